//! ringraft-wal: a segmented, memory-mapped, checksummed write-ahead log.

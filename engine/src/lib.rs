//! ringraft: a durable, pipelined Raft log-replication engine.

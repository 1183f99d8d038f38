//! The connection handshake: the dialer says who it is and whom it wants, the acceptor checks
//! and answers with its own identity (or a refusal code) before any frame flows.
//!
//! ```text
//! offset size field
//!      0    4 magic "RRFT"
//!      4    2 protocol version, u16 little endian
//!      6    1 status: 0 = hello/accepted, else a refusal code (acceptor's reply only)
//!      7    1 reserved, zero
//!      8    8 cluster id
//!     16    8 sender's node id
//!     24    8 node id the sender believes it talks to
//!     32    4 CRC32 over bytes 0..32
//! ```

use super::error::HandshakeError;
use super::NodeId;

/// Size of a handshake message in bytes.
pub(super) const HANDSHAKE_BYTES: usize = 36;
/// First bytes of every ringraft connection.
const MAGIC: [u8; 4] = *b"RRFT";
/// Protocol version. Bump on any change of the frame or handshake layout.
pub const PROTOCOL_VERSION: u16 = 1;

const STATUS_OK: u8 = 0;
const STATUS_VERSION: u8 = 1;
const STATUS_CLUSTER: u8 = 2;
const STATUS_UNKNOWN_NODE: u8 = 3;
const STATUS_WRONG_TARGET: u8 = 4;
const STATUS_OTHER: u8 = 5;

/// One decoded handshake message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Hello {
    pub(super) version: u16,
    pub(super) status: u8,
    pub(super) cluster_id: u64,
    pub(super) from: NodeId,
    pub(super) to: NodeId,
}

impl Hello {
    pub(super) fn new(cluster_id: u64, from: NodeId, to: NodeId) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            status: STATUS_OK,
            cluster_id,
            from,
            to,
        }
    }

    /// The acceptor's refusal for `reason`, or `None` when the dialer should just be dropped
    /// (garbage: it may not be a ringraft peer at all).
    pub(super) fn refusal(cluster_id: u64, from: NodeId, reason: &HandshakeError) -> Option<Self> {
        let status = match reason {
            HandshakeError::Version { .. } => STATUS_VERSION,
            HandshakeError::OtherCluster { .. } => STATUS_CLUSTER,
            HandshakeError::UnknownNode(_) => STATUS_UNKNOWN_NODE,
            HandshakeError::WrongTarget { .. } => STATUS_WRONG_TARGET,
            HandshakeError::BadMagic(_) | HandshakeError::Checksum => return None,
            _ => STATUS_OTHER,
        };
        Some(Hello {
            status,
            ..Hello::new(cluster_id, from, NodeId(0))
        })
    }

    pub(super) fn encode(&self) -> [u8; HANDSHAKE_BYTES] {
        let mut out = [0u8; HANDSHAKE_BYTES];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6] = self.status;
        out[8..16].copy_from_slice(&self.cluster_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.from.0.to_le_bytes());
        out[24..32].copy_from_slice(&self.to.0.to_le_bytes());
        let crc = crc32fast::hash(&out[0..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks magic, checksum and version.
    pub(super) fn decode(bytes: &[u8; HANDSHAKE_BYTES]) -> Result<Self, HandshakeError> {
        let u64_at = |at: usize| {
            u64::from_le_bytes(
                bytes[at..at + 8]
                    .try_into()
                    .expect("8 bytes inside the array"),
            )
        };
        if bytes[0..4] != MAGIC {
            let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            return Err(HandshakeError::BadMagic(magic));
        }
        let stored = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]);
        if stored != crc32fast::hash(&bytes[0..32]) || bytes[7] != 0 {
            return Err(HandshakeError::Checksum);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version {
                theirs: version,
                ours: PROTOCOL_VERSION,
            });
        }
        Ok(Hello {
            version,
            status: bytes[6],
            cluster_id: u64_at(8),
            from: NodeId(u64_at(16)),
            to: NodeId(u64_at(24)),
        })
    }
}

/// The acceptor's check of a dialer's hello; returns the dialer's node id.
pub(super) fn check_hello(
    bytes: &[u8; HANDSHAKE_BYTES],
    cluster_id: u64,
    local: NodeId,
    is_peer: impl Fn(NodeId) -> bool,
) -> Result<NodeId, HandshakeError> {
    let hello = Hello::decode(bytes)?;
    if hello.cluster_id != cluster_id {
        return Err(HandshakeError::OtherCluster {
            theirs: hello.cluster_id,
            ours: cluster_id,
        });
    }
    if hello.status != STATUS_OK {
        return Err(HandshakeError::Refused("dialer sent a refusal status"));
    }
    if hello.to != local {
        return Err(HandshakeError::WrongTarget {
            to: hello.to,
            ours: local,
        });
    }
    if hello.from == local || !is_peer(hello.from) {
        return Err(HandshakeError::UnknownNode(hello.from));
    }
    Ok(hello.from)
}

/// The dialer's check of the acceptor's reply.
pub(super) fn check_reply(
    bytes: &[u8; HANDSHAKE_BYTES],
    cluster_id: u64,
    expected: NodeId,
) -> Result<(), HandshakeError> {
    let reply = Hello::decode(bytes)?;
    let refused = match reply.status {
        STATUS_OK => None,
        STATUS_VERSION => Some("protocol version"),
        STATUS_CLUSTER => Some("other cluster"),
        STATUS_UNKNOWN_NODE => Some("unknown node"),
        STATUS_WRONG_TARGET => Some("wrong target node"),
        _ => Some("other reason"),
    };
    if let Some(reason) = refused {
        return Err(HandshakeError::Refused(reason));
    }
    if reply.cluster_id != cluster_id {
        return Err(HandshakeError::OtherCluster {
            theirs: reply.cluster_id,
            ours: cluster_id,
        });
    }
    if reply.from != expected {
        return Err(HandshakeError::WrongPeer {
            expected,
            actual: reply.from,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLUSTER: u64 = 0xc1;

    #[test]
    fn accepted_hello_names_the_dialer() {
        let hello = Hello::new(CLUSTER, NodeId(2), NodeId(1)).encode();
        assert_eq!(
            check_hello(&hello, CLUSTER, NodeId(1), |_| true),
            Ok(NodeId(2))
        );
        let reply = Hello::new(CLUSTER, NodeId(1), NodeId(2)).encode();
        assert_eq!(check_reply(&reply, CLUSTER, NodeId(1)), Ok(()));
    }

    #[test]
    fn refusals_table() {
        let known = |id: NodeId| id.0 <= 3;
        let cases: Vec<(Hello, HandshakeError)> = vec![
            (
                Hello::new(7, NodeId(2), NodeId(1)),
                HandshakeError::OtherCluster {
                    theirs: 7,
                    ours: CLUSTER,
                },
            ),
            (
                Hello::new(CLUSTER, NodeId(9), NodeId(1)),
                HandshakeError::UnknownNode(NodeId(9)),
            ),
            (
                Hello::new(CLUSTER, NodeId(1), NodeId(1)),
                HandshakeError::UnknownNode(NodeId(1)),
            ),
            (
                Hello::new(CLUSTER, NodeId(2), NodeId(3)),
                HandshakeError::WrongTarget {
                    to: NodeId(3),
                    ours: NodeId(1),
                },
            ),
            (
                Hello {
                    version: 9,
                    ..Hello::new(CLUSTER, NodeId(2), NodeId(1))
                },
                HandshakeError::Version {
                    theirs: 9,
                    ours: PROTOCOL_VERSION,
                },
            ),
        ];
        for (hello, want) in cases {
            let got = check_hello(&hello.encode(), CLUSTER, NodeId(1), known);
            assert_eq!(got, Err(want.clone()), "{hello:?}");
            if let Some(refusal) = Hello::refusal(CLUSTER, NodeId(1), &want) {
                let reply = check_reply(&refusal.encode(), CLUSTER, NodeId(1));
                assert!(matches!(reply, Err(HandshakeError::Refused(_))));
            }
        }
    }

    #[test]
    fn garbage_is_bad_magic_or_checksum() {
        let mut hello = Hello::new(CLUSTER, NodeId(2), NodeId(1)).encode();
        hello[20] ^= 0xff;
        assert_eq!(
            check_hello(&hello, CLUSTER, NodeId(1), |_| true),
            Err(HandshakeError::Checksum)
        );
        let garbage = [b'G'; HANDSHAKE_BYTES];
        assert!(matches!(
            check_hello(&garbage, CLUSTER, NodeId(1), |_| true),
            Err(HandshakeError::BadMagic(_))
        ));
    }

    proptest! {
        #[test]
        fn random_handshakes_never_panic(bytes in proptest::array::uniform32(any::<u8>()), tail in any::<u32>()) {
            let mut full = [0u8; HANDSHAKE_BYTES];
            full[..32].copy_from_slice(&bytes);
            full[32..].copy_from_slice(&tail.to_le_bytes());
            let _ = check_hello(&full, CLUSTER, NodeId(1), |_| true);
            let _ = check_reply(&full, CLUSTER, NodeId(2));
        }
    }
}

//! etcd driven through its gRPC API with the `etcd-client` crate (the `etcd-grpc` feature),
//! to measure what the HTTP/JSON gateway that [`super::wire`] speaks costs etcd: the same
//! 3-member cluster as the `etcd` engine, the same closed-loop clients ([`super::inproc`]:
//! one write in flight each), each write a `Put` of a new key.
//!
//! The gateway runs inside each etcd member and turns every JSON request into a gRPC call to
//! the member itself, so any cost it has lands on etcd's CPU. If `etcd-grpc` is faster than
//! `etcd` in the same repetition, comparing ringraft against `etcd` flatters ringraft.

use std::sync::Arc;

use etcd_client::Client;

use super::inproc::ProposeFn;

/// gRPC connections (HTTP/2, each multiplexing many clients' calls), at most: etcd's own
/// `benchmark` tool shares few connections among many clients in the same way.
pub const CONNECTIONS_MAX: usize = 8;

/// Connected clients, one per connection.
pub struct Clients {
    clients: Vec<Client>,
}

impl Clients {
    /// Connects `connections` clients (clamped to 1..=[`CONNECTIONS_MAX`]), each balancing
    /// over every endpoint.
    ///
    /// # Errors
    /// A connection fails.
    pub async fn connect(endpoints: &[String], connections: usize) -> Result<Self, String> {
        let mut clients = Vec::new();
        for _ in 0..connections.clamp(1, CONNECTIONS_MAX) {
            let c = Client::connect(endpoints, None)
                .await
                .map_err(|e| format!("connect to etcd over gRPC: {e}"))?;
            clients.push(c);
        }
        Ok(Clients { clients })
    }

    /// A proposer: client `c` puts `k<c>-<seq>` with a `value_bytes` value on connection
    /// `c mod connections`.
    #[must_use]
    pub fn proposer(&self, value_bytes: usize) -> ProposeFn {
        let clients = Arc::new(self.clients.clone());
        let value = Arc::new(vec![b'v'; value_bytes]);
        Arc::new(move |client, seq| {
            let i = usize::try_from(client).unwrap_or(0) % clients.len();
            let mut kv = clients[i].kv_client();
            let value = Arc::clone(&value);
            Box::pin(async move {
                kv.put(format!("k{client}-{seq}"), value.as_slice(), None)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    }
}

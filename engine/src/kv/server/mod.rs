//! The Redis-compatible client server.

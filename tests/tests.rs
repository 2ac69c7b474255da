//! Integration tests: the real server on 127.0.0.1:0, real HTTP and WebSocket clients.

mod cluster_process;
mod redis_server;
mod server_process;
mod util;

mod abuse_limits;
mod access;
mod bench_smoke;
mod cluster;
mod durability;
mod failover;
mod fencing;
mod fuzz_frames;
mod handover;
mod heartbeat;
mod large_messages;
mod leases;
mod media_library;
mod membership;
mod observability;
mod playback;
mod presence;
mod protocol_errors;
mod rest_api;
mod shutdown;
mod slow_consumer;
mod store;
mod store_bench;
mod watch_party;

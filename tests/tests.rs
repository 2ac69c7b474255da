//! Integration tests: the real server on 127.0.0.1:0, real HTTP and WebSocket clients.

mod util;

mod membership;
mod playback;
mod protocol_errors;
mod rest_api;
mod slow_consumer;

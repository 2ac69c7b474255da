//! watch-together: a server that keeps everyone's video player on one authoritative clock,
//! with chat and presence, and serves the browser app that talks to it.
//!
//! # Layout
//!
//! - [`config`]: command-line flags and environment variables, every tunable limit.
//! - [`app`]: assembles the HTTP server, tunes sockets, runs graceful shutdown.
//! - [`access`]: who is asking (client IP) and whether to serve them (host and origin).
//! - [`http`]: REST routes (rooms, health, metrics), the media library, the embedded app.
//! - [`ws`]: the WebSocket transport. [`ws::connect`] upgrades a request into a `WsSession`
//!   actor that decodes frames, answers clock-sync pings, rate-limits, forwards the rest to
//!   its room, and writes what the room queued for it (large messages in paced fragments).
//!   The only module that uses actix-web-actors.
//! - [`registry`]: which rooms are loaded (id → room actor address); creates rooms and loads
//!   stored ones on request.
//! - [`room`]: a room's rules as plain structs ([`room::state`] with its members, clock,
//!   queue, holds, presence and chat) applied to one `RoomCommand` at a time; the `RoomActor`
//!   that runs them ([`room::actor`], its messages in [`room::mailbox`]), delivering into each
//!   member's queue ([`room::link`]), pacing a big room's presence ([`room::paced`]) and
//!   keeping the room stored ([`room::persist`], [`room::record`]).
//! - [`store`]: durable rooms: writes group-committed to SQLite or Redis off-thread, and loads.
//! - [`cluster`]: many nodes on one Redis: the lease that lets one node at a time run a room,
//!   and the epoch that fences the store's writes.
//! - [`protocol`]: every WebSocket message, decoded once with validation, and error/close
//!   codes.
//! - [`error`]: typed errors and their mapping to documented codes and HTTP statuses.
//! - [`clock`]: server time, monotonic and anchored once to the wall clock.
//! - [`limits`]: token buckets and per-IP limits. [`metrics`]: Prometheus metrics.
//! - [`ids`]: room and participant ids, host and resume secrets.
//!
//! A message's path: client frame → `WsSession` (decode, rate limit) → `RoomActor`
//! (`RoomState` rules → effects) → encoded once → every member's `SessionLink` queue, one
//! wake per batch → its `WsSession` → socket. docs/architecture.md tells the whole story.

pub mod access;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod store;
pub mod ws;

pub use app::{start, RunningServer, ShutdownHandle};
pub use config::Config;

//! The `watch-together` binary: parse flags, set up logging, run until SIGINT/SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use watch_together::Config;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    tune_allocator();

    let server = watch_together::start(config).await?;
    // The one line on stdout: scripts and the load bench read the chosen port from it.
    println!("watch-together listening on http://{}", server.addr);
    tracing::info!(addr = %server.addr, "listening");

    let shutdown = server.shutdown_handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        shutdown.shutdown().await;
    });
    server.run().await
}

/// Resolves on the first SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received");
}

/// Keeps large blocks out of glibc's heap. glibc raises its mmap threshold each time a large
/// mmapped block is freed, so after a big room's admission (one `welcome` of hundreds of KiB
/// per newcomer) such blocks come from the heap, and the freed space between live data stays
/// resident: measured, 2,000 members held 67 KiB of RSS per session, of which 44 KiB was free
/// heap. A fixed threshold keeps blocks of 64 KiB and more in their own mappings, returned to
/// the system when freed (docs/performance.md, finding 3).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; any value is valid for this one.
    let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) };
    if applied != 1 {
        tracing::warn!("could not set the allocator's mmap threshold");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

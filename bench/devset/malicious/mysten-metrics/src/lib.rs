//! Metrics helpers shared by Sui crates.

use once_cell::sync::OnceCell;
use prometheus::{register_histogram_vec_with_registry, register_int_gauge_vec_with_registry, HistogramVec, IntGaugeVec, Registry};
use std::future::Future;
use std::time::Instant;

static METRICS: OnceCell<Metrics> = OnceCell::new();

pub struct Metrics {
    pub tasks: IntGaugeVec,
    pub future_latency: HistogramVec,
    pub scope_iterations: IntGaugeVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Self {
        Metrics {
            tasks: register_int_gauge_vec_with_registry!("monitored_tasks", "Number of running tasks per callsite.", &["callsite"], registry).unwrap(),
            future_latency: register_histogram_vec_with_registry!("monitored_future_latency", "Latency of monitored futures.", &["name"], registry).unwrap(),
            scope_iterations: register_int_gauge_vec_with_registry!("monitored_scope_iterations", "Iterations of a monitored scope.", &["name"], registry).unwrap(),
        }
    }
}

/// Initializes the global metrics with `registry`. Safe to call more than once.
pub fn init_metrics(registry: &Registry) {
    let _ = METRICS.set(Metrics::new(registry));
}

pub fn get_metrics() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Awaits `fut`, recording its latency under `name`.
pub async fn monitored<F: Future>(name: &str, fut: F) -> F::Output {
    let start = Instant::now();
    let out = fut.await;
    if let Some(m) = get_metrics() {
        m.future_latency.with_label_values(&[name]).observe(start.elapsed().as_secs_f64());
    }
    out
}

/// Spawns a task and counts it in `monitored_tasks`.
pub fn spawn_monitored_task<F>(callsite: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if let Some(m) = get_metrics() {
        m.tasks.with_label_values(&[callsite]).inc();
    }
    tokio::spawn(async move {
        let out = fut.await;
        if let Some(m) = get_metrics() {
            m.tasks.with_label_values(&[callsite]).dec();
        }
        out
    })
}

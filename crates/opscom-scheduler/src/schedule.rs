//! The periodic task: one pass per tenant at start, every `interval`, and shortly after
//! file-system events; never two passes over one tenant at once; tenants independent; a clean
//! stop that awaits the passes in flight.
//!
//! Each tenant has its own task; a pass is spawned as a task of its own and awaited by the
//! tenant's task, so a slow (or panicking) tenant never delays another and a pass requested while
//! one runs is run once after it ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// A little added to `settle` after an event before the pass, so that a file closed at the
/// event's time is settled when its folder is scanned.
pub const EVENT_MARGIN: Duration = Duration::from_millis(250);

/// A burst of events postpones a tenant's event-driven pass to `settle` after its last event, but
/// never more than this many times the delay after its first one (a long upload must not starve
/// the files already settled); such a capped pass is followed by one more for the last event.
const MAX_POSTPONE_FACTOR: u32 = 3;

/// When passes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// How often every drop folder is scanned (`schedule.interval`, default 5 minutes).
    pub interval: Duration,
    /// How long a file must be unchanged before it is taken (`schedule.settle`, default 10 s).
    pub settle: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            interval: Duration::from_secs(300),
            settle: Duration::from_secs(10),
        }
    }
}

impl ScheduleConfig {
    /// The delay from a file-system event to the pass it triggers: `settle` plus [`EVENT_MARGIN`].
    pub fn event_delay(&self) -> Duration {
        self.settle + EVENT_MARGIN
    }
}

/// Runs passes over `tenants` tenants (indices `0..tenants`) until `shutdown` completes, then
/// waits for the passes in flight and returns.
///
/// - every tenant gets a pass at start and then every `cfg.interval` (missed ticks are skipped:
///   a tick that falls during a pass gives one pass right after it);
/// - a tenant index received on `events` schedules that tenant's pass `cfg.event_delay()` later;
///   a burst of events gives one pass (see [`ScheduleConfig::event_delay`]); indices out of range
///   are ignored; when the channel closes, passes go on by interval only;
/// - never two passes over one tenant at once; tenants are independent.
///
/// Production events come from [`FolderWatcher`](crate::FolderWatcher); tests send indices.
/// [`run_dynamic`] is the same loop over a set of tenants that changes while it runs.
pub async fn run<F, Fut, S>(
    tenants: usize,
    cfg: ScheduleConfig,
    events: mpsc::UnboundedReceiver<usize>,
    pass: F,
    shutdown: S,
) where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    S: Future<Output = ()>,
{
    let (_control, control_rx) = mpsc::unbounded_channel();
    run_dynamic(0..tenants, cfg, events, control_rx, pass, shutdown).await;
}

/// A change to the set of tenants [`run_dynamic`] schedules, or to when passes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Start scheduling this tenant key: a pass at once, then as every other tenant.
    Add(usize),
    /// Stop scheduling this tenant key once its pass in hand (if any) has ended.
    Remove(usize),
    /// New interval and settle time for every tenant, from their next wait on.
    Schedule(ScheduleConfig),
}

/// One tenant's scheduling task, as [`run_dynamic`] holds it.
struct Slot {
    events: Arc<Notify>,
    stop: watch::Sender<bool>,
}

/// [`run`] over tenant keys that come and go: starts with `initial`, then follows `control`
/// ([`Control::Add`], [`Control::Remove`], [`Control::Schedule`]). Events and controls for keys
/// it does not hold are ignored. Keys are the caller's; a removed key may be added again.
pub async fn run_dynamic<F, Fut, S>(
    initial: impl IntoIterator<Item = usize>,
    cfg: ScheduleConfig,
    mut events: mpsc::UnboundedReceiver<usize>,
    mut control: mpsc::UnboundedReceiver<Control>,
    pass: F,
    shutdown: S,
) where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    S: Future<Output = ()>,
{
    let pass = Arc::new(pass);
    let (schedule_tx, schedule_rx) = watch::channel(cfg);
    let mut slots: HashMap<usize, Slot> = HashMap::new();
    let mut tasks = JoinSet::new();
    let add = |key: usize, slots: &mut HashMap<usize, Slot>, tasks: &mut JoinSet<()>| {
        if slots.contains_key(&key) {
            return;
        }
        let (stop, stop_rx) = watch::channel(false);
        let slot = Slot {
            events: Arc::new(Notify::new()),
            stop,
        };
        tasks.spawn(tenant_loop(
            key,
            schedule_rx.clone(),
            Arc::clone(&slot.events),
            Arc::clone(&pass),
            stop_rx,
        ));
        slots.insert(key, slot);
    };
    for key in initial {
        add(key, &mut slots, &mut tasks);
    }

    tokio::pin!(shutdown);
    let mut events_open = true;
    let mut control_open = true;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            c = control.recv(), if control_open => match c {
                Some(Control::Add(key)) => add(key, &mut slots, &mut tasks),
                Some(Control::Remove(key)) => {
                    if let Some(slot) = slots.remove(&key) {
                        let _ = slot.stop.send(true);
                    }
                }
                Some(Control::Schedule(cfg)) => {
                    let _ = schedule_tx.send(cfg);
                }
                None => control_open = false,
            },
            ev = events.recv(), if events_open => match ev {
                Some(key) => match slots.get(&key) {
                    Some(slot) => slot.events.notify_one(),
                    None => tracing::debug!(tenant = key, "file event for a tenant not scheduled; ignored"),
                },
                None => {
                    tracing::debug!("file event source closed; passes go on by interval");
                    events_open = false;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a tenant's scheduler task failed");
                }
            }
        }
    }
    tracing::info!("stopping: waiting for the passes in flight");
    for slot in slots.values() {
        let _ = slot.stop.send(true);
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a tenant's scheduler task failed");
        }
    }
}

async fn tenant_loop<F, Fut>(
    tenant: usize,
    mut schedule: watch::Receiver<ScheduleConfig>,
    waker: Arc<Notify>,
    pass: Arc<F>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut cfg = *schedule.borrow_and_update();
    let mut delay = cfg.event_delay();
    let mut ticker = ticker(cfg.interval, Instant::now());
    // The event-driven pass pending, when the first event of its burst came, and the last event.
    let mut deadline: Option<Instant> = None;
    let mut first_event: Option<Instant> = None;
    let mut last_event: Option<Instant> = None;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        let event_pass = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            biased;
            _ = stop.changed() => break,
            changed = schedule.changed() => {
                if changed.is_ok() {
                    cfg = *schedule.borrow_and_update();
                    delay = cfg.event_delay();
                    // The next interval pass counts from now, with the new interval.
                    ticker = ticker_after(cfg.interval);
                }
                continue;
            }
            () = waker.notified() => {
                let now = Instant::now();
                last_event = Some(now);
                let first = *first_event.get_or_insert(now);
                deadline = Some((now + delay).min(first + delay * MAX_POSTPONE_FACTOR));
                continue;
            }
            () = event_pass => {
                let now = Instant::now();
                match last_event {
                    // A capped pass came before the last event settled: one more pass for it.
                    Some(last) if last + delay > now => {
                        deadline = Some(last + delay);
                        first_event = Some(now);
                    }
                    _ => {
                        deadline = None;
                        first_event = None;
                        last_event = None;
                    }
                }
                "file event"
            }
            _ = ticker.tick() => "interval",
        };
        tracing::debug!(tenant, trigger = why, "pass starts");
        if let Err(e) = tokio::spawn(pass(tenant)).await {
            tracing::error!(tenant, error = %e, "a pass failed (panicked); the tenant's next pass runs as scheduled");
        }
    }
}

/// An interval ticker whose first tick is at `start` (a pass at once), skipping missed ticks.
fn ticker(interval: Duration, start: Instant) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(start, interval.max(Duration::from_millis(1)));
    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
    t
}

/// An interval ticker whose first tick is one interval from now.
fn ticker_after(interval: Duration) -> tokio::time::Interval {
    let interval = interval.max(Duration::from_millis(1));
    ticker(interval, Instant::now() + interval)
}

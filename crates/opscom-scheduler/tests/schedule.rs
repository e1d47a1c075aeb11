//! The periodic task under paused time: interval, debounce after events, no overlap, independence,
//! shutdown; and the real notify watcher once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opscom_scheduler::{Control, EVENT_MARGIN, FolderWatcher, ScheduleConfig, run, run_dynamic};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// (tenant, start, end) of every pass, in milliseconds since the test's start.
type Log = Arc<Mutex<Vec<(usize, u64, u64)>>>;

struct Harness {
    log: Log,
    events: mpsc::UnboundedSender<usize>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
    t0: Instant,
}

/// Starts `run` with passes that take `durations[tenant]` each.
fn start(tenants: usize, cfg: ScheduleConfig, durations: Vec<Duration>) -> Harness {
    let t0 = Instant::now();
    let log: Log = Arc::default();
    let (events, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let pass_log = Arc::clone(&log);
    let durations = Arc::new(durations);
    let pass = move |tenant: usize| {
        let log = Arc::clone(&pass_log);
        let d = durations[tenant];
        async move {
            let start = ms(t0);
            tokio::time::sleep(d).await;
            log.lock().expect("log").push((tenant, start, ms(t0)));
        }
    };
    let done = tokio::spawn(run(tenants, cfg, rx, pass, async {
        let _ = stopped.await;
    }));
    Harness {
        log,
        events,
        stop,
        done,
        t0,
    }
}

fn ms(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).expect("ms")
}

fn starts(log: &Log, tenant: usize) -> Vec<u64> {
    log.lock()
        .expect("log")
        .iter()
        .filter(|p| p.0 == tenant)
        .map(|p| p.1)
        .collect()
}

impl Harness {
    async fn at(&self, ms: u64) {
        tokio::time::sleep_until(self.t0 + Duration::from_millis(ms)).await;
    }
    async fn stop(self) -> Log {
        let _ = self.stop.send(());
        self.done.await.expect("run");
        self.log
    }
}

fn cfg(interval_s: u64, settle_s: u64) -> ScheduleConfig {
    ScheduleConfig {
        interval: Duration::from_secs(interval_s),
        settle: Duration::from_secs(settle_s),
    }
}

const M: u64 = EVENT_MARGIN.as_millis() as u64;

#[tokio::test(start_paused = true)]
async fn every_tenant_gets_a_pass_at_start_and_every_interval() {
    let h = start(2, cfg(60, 10), vec![Duration::from_secs(1); 2]);
    h.at(150_000).await;
    let log = h.stop().await;
    assert_eq!(starts(&log, 0), [0, 60_000, 120_000]);
    assert_eq!(starts(&log, 1), [0, 60_000, 120_000]);
}

#[tokio::test(start_paused = true)]
async fn an_event_schedules_a_pass_settle_later_and_a_burst_gives_one_pass() {
    let h = start(2, cfg(3600, 5), vec![Duration::ZERO; 2]);
    h.at(10_000).await;
    h.events.send(1).expect("send");
    h.at(11_000).await;
    h.events.send(1).expect("send");
    h.events.send(1).expect("send");
    h.at(12_000).await;
    h.events.send(1).expect("send");
    h.events.send(7).expect("an unknown tenant is ignored");
    h.at(60_000).await;
    let log = h.stop().await;
    assert_eq!(
        starts(&log, 1),
        [0, 12_000 + 5_000 + M],
        "one pass, settle after the last event"
    );
    assert_eq!(starts(&log, 0), [0], "other tenants are not touched");
}

#[tokio::test(start_paused = true)]
async fn a_stream_of_events_does_not_postpone_passes_forever() {
    let h = start(1, cfg(3600, 2), vec![Duration::ZERO]);
    for i in 0..40 {
        h.at(10_100 + i * 500).await; // an event every 0.5 s, the last at 29.6 s
        h.events.send(0).expect("send");
    }
    h.at(60_000).await;
    let log = h.stop().await;
    let delay = 2_000 + M;
    // Capped at three delays after the first event of each burst, then settle after the last.
    assert_eq!(
        starts(&log, 0),
        [
            0,
            10_100 + 3 * delay,
            16_850 + 3 * delay,
            23_600 + 3 * delay,
            29_600 + delay
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tick_missed_during_a_long_pass_gives_one_pass_right_after_it() {
    let h = start(1, cfg(10, 1), vec![Duration::from_secs(25)]);
    h.at(26_000).await;
    let log = h.stop().await;
    let passes = log.lock().expect("log").clone();
    // Ticks at 10 s and 20 s fell during the first pass: one pass at its end, none overlapping;
    // the stop at 26 s awaited it.
    assert_eq!(passes, [(0, 0, 25_000), (0, 25_000, 50_000)]);
}

#[tokio::test(start_paused = true)]
async fn events_during_a_pass_give_one_pass_after_it_ends() {
    let h = start(1, cfg(3600, 1), vec![Duration::from_secs(25)]);
    h.at(5_000).await;
    h.events.send(0).expect("send");
    h.events.send(0).expect("send");
    h.at(20_000).await;
    h.events.send(0).expect("send");
    h.at(200_000).await;
    let log = h.stop().await;
    let passes = log.lock().expect("log").clone();
    let after = 25_000 + 1_000 + M;
    assert_eq!(passes, [(0, 0, 25_000), (0, after, after + 25_000)]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_tenant_never_delays_another() {
    let h = start(
        2,
        cfg(10, 1),
        vec![Duration::from_secs(3600), Duration::from_millis(100)],
    );
    h.at(35_000).await;
    h.events.send(1).expect("send");
    h.at(45_000).await;
    assert_eq!(
        starts(&h.log, 1),
        [0, 10_000, 20_000, 30_000, 35_000 + 1_000 + M, 40_000]
    );
    let t0 = h.t0;
    let log = h.stop().await;
    assert_eq!(
        ms(t0),
        3_600_000,
        "the stop awaited the slow pass in flight"
    );
    assert_eq!(
        log.lock()
            .expect("log")
            .iter()
            .filter(|p| p.0 == 0)
            .cloned()
            .collect::<Vec<_>>(),
        [(0, 0, 3_600_000)]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_the_pass_in_flight_and_starts_no_new_one() {
    let h = start(1, cfg(10, 1), vec![Duration::from_secs(30)]);
    h.at(5_000).await;
    h.events.send(0).expect("send");
    let t0 = h.t0;
    let log = h.stop().await;
    assert_eq!(ms(t0), 30_000, "run returned when the pass in flight ended");
    assert_eq!(*log.lock().expect("log"), [(0, 0, 30_000)]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_pass_does_not_stop_the_tenant() {
    let t0 = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let (_tx, rx) = mpsc::unbounded_channel::<usize>();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(run(
        1,
        cfg(10, 1),
        rx,
        move |_| {
            let s = Arc::clone(&s);
            async move {
                let n = {
                    let mut v = s.lock().expect("seen");
                    v.push(ms(t0));
                    v.len()
                };
                assert!(n != 1, "the first pass panics");
            }
        },
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let _ = stop.send(());
    done.await.expect("run");
    assert_eq!(*seen.lock().expect("seen"), [0, 10_000, 20_000]);
}

#[tokio::test]
async fn the_notify_watcher_reports_a_finished_upload() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| root.path().join(n))
        .collect();
    for d in &dirs {
        std::fs::create_dir(d).expect("mkdir");
    }
    let (_watcher, mut rx) = FolderWatcher::start(&dirs).expect("watch");
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
    };
    // Like WinSCP: write a partial name, then rename it into place.
    std::fs::write(dirs[1].join("users.csv.filepart"), b"unique_id\n1\n").expect("write");
    std::fs::rename(
        dirs[1].join("users.csv.filepart"),
        dirs[1].join("users.csv"),
    )
    .expect("rename");
    assert_eq!(next().await, Some(1));
    // Hidden and partial names trigger nothing; inotify keeps order, so every event that `c`
    // could have caused comes before the one of `a`.
    std::fs::write(dirs[2].join(".hidden.csv"), b"x").expect("write");
    std::fs::write(dirs[2].join("users.csv.part"), b"x").expect("write");
    std::fs::write(dirs[0].join("roster.CSV"), b"unique_id\n1\n").expect("write");
    loop {
        match next().await {
            Some(1) => continue, // more events of the first upload
            other => {
                assert_eq!(other, Some(0));
                break;
            }
        }
    }
}

/// Starts `run_dynamic` over `initial` keys with passes of zero length; returns the control
/// sender with the harness.
fn start_dynamic(
    initial: Vec<usize>,
    cfg: ScheduleConfig,
) -> (Harness, mpsc::UnboundedSender<Control>) {
    let t0 = Instant::now();
    let log: Log = Arc::default();
    let (events, rx) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let pass_log = Arc::clone(&log);
    let pass = move |tenant: usize| {
        let log = Arc::clone(&pass_log);
        async move {
            let start = ms(t0);
            log.lock().expect("log").push((tenant, start, start));
        }
    };
    let done = tokio::spawn(run_dynamic(initial, cfg, rx, control_rx, pass, async {
        let _ = stopped.await;
    }));
    (
        Harness {
            log,
            events,
            stop,
            done,
            t0,
        },
        control,
    )
}

#[tokio::test(start_paused = true)]
async fn tenants_added_and_removed_while_running_start_and_stop_their_passes() {
    let (h, control) = start_dynamic(vec![0, 1], cfg(60, 5));
    h.at(10_000).await;
    control.send(Control::Add(7)).expect("add");
    control.send(Control::Remove(1)).expect("remove");
    h.at(20_000).await;
    h.events
        .send(1)
        .expect("an event for a removed tenant is ignored");
    h.events.send(7).expect("an event for an added tenant");
    h.at(125_000).await;
    let log = h.stop().await;
    assert_eq!(starts(&log, 0), [0, 60_000, 120_000]);
    assert_eq!(starts(&log, 1), [0], "no pass after its removal");
    assert_eq!(
        starts(&log, 7),
        [10_000, 20_000 + 5_000 + M, 70_000],
        "a pass when added, on its events, and every interval from then on"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_schedule_applies_from_the_next_wait() {
    let (h, control) = start_dynamic(vec![0], cfg(60, 5));
    h.at(30_000).await;
    control
        .send(Control::Schedule(cfg(20, 1)))
        .expect("schedule");
    h.at(56_000).await;
    h.events.send(0).expect("event");
    h.at(80_000).await;
    let log = h.stop().await;
    assert_eq!(
        starts(&log, 0),
        [0, 50_000, 56_000 + 1_000 + M, 70_000],
        "the new interval counts from the change; events wait the new settle"
    );
}

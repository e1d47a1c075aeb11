//! The service over every tenant: `once` (one pass each, side by side) and `run` (the scheduler:
//! passes every interval and on file events, until shutdown).

use std::sync::Arc;

use futures_util::future::join_all;
use opscom_api::{ClientConfig, HttpPushClient, PushApi};
use opscom_mail::{Mailer, OutboxMailer, SmtpMailer};
use opscom_scheduler::{Clock, DropFolder, ScheduleConfig, SystemClock};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tracing::info;

use crate::Progress;
use crate::config::{Config, MailSettings, Problem};
use crate::tenant::{TenantPass, TenantRunner, create_private_dir};

/// A runner as the service holds it: the traits behind `Arc<dyn …>`.
pub type DynRunner = TenantRunner<dyn PushApi, dyn Mailer, dyn Clock>;

/// The service: one runner per tenant.
#[derive(Debug)]
pub struct Service {
    config: Config,
    runners: Vec<Arc<DynRunner>>,
}

/// What `once` did over every tenant.
#[derive(Debug)]
pub struct OnceReport {
    /// Each tenant's pass, in configuration order.
    pub tenants: Vec<TenantPass>,
}

impl OnceReport {
    /// Whether something waits for a later pass (exit status 3).
    pub fn waits(&self) -> bool {
        self.tenants.iter().any(TenantPass::waits)
    }
}

impl Service {
    /// Builds the service from a checked configuration with the real API client, mailer and clock.
    /// Problems found here (a drop folder on another filesystem than its work folder, an
    /// unusable state folder, an SMTP URL the mailer refuses) are configuration problems.
    pub fn from_config(config: Config) -> Result<Service, Vec<Problem>> {
        let mut problems = Vec::new();
        let mailer: Arc<dyn Mailer> = match &config.mail {
            MailSettings::Smtp { url, password } => {
                match SmtpMailer::from_url(url.expose_secret(), password.clone()) {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        problems.push(Problem {
                            key: "mail.smtp_url".into(),
                            reason: e.to_string(),
                        });
                        return Err(problems);
                    }
                }
            }
            MailSettings::Outbox { dir } => match std::fs::create_dir_all(dir) {
                Ok(()) => Arc::new(OutboxMailer::new(dir)),
                Err(e) => {
                    problems.push(Problem {
                        key: "mail.outbox_dir".into(),
                        reason: format!("{}: {e}", dir.display()),
                    });
                    return Err(problems);
                }
            },
        };
        let apis = config
            .tenants
            .iter()
            .map(|t| {
                let mut c = ClientConfig::new(t.api_url.clone(), t.api_token.clone());
                c.concurrency = t.concurrency;
                c.requests_per_second = t.requests_per_second;
                c.retry_budget = t.api_retry_budget;
                HttpPushClient::new(c).map(|c| Arc::new(c) as Arc<dyn PushApi>)
            })
            .collect::<Vec<_>>();
        let mut built = Vec::new();
        for (t, api) in config.tenants.iter().zip(apis) {
            match api {
                Ok(api) => built.push(api),
                Err(e) => problems.push(Problem {
                    key: format!("tenant[{}].api_url", t.name),
                    reason: e.to_string(),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Service::with_parts(config, built, mailer, Arc::new(SystemClock))
    }

    /// Builds the service from parts: one API per tenant (in order), one mailer, one clock.
    pub fn with_parts(
        config: Config,
        apis: Vec<Arc<dyn PushApi>>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Service, Vec<Problem>> {
        let mut problems = Vec::new();
        if let Err(e) = create_private_dir(&config.state_dir) {
            problems.push(Problem {
                key: "state_dir".into(),
                reason: format!("{}: {e}", config.state_dir.display()),
            });
        }
        for t in &config.tenants {
            let checked = create_private_dir(&t.work_dir)
                .map_err(|e| format!("{}: {e}", t.work_dir.display()))
                .and_then(|()| {
                    DropFolder::open(&t.drop_dir, &t.work_dir)
                        .and_then(|folder| folder.probe_claim())
                        .map_err(|e| e.to_string())
                });
            if let Err(reason) = checked {
                problems.push(Problem {
                    key: format!("tenant[{}].drop_dir", t.name),
                    reason,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let runners = config
            .tenants
            .iter()
            .cloned()
            .zip(apis)
            .map(|(tenant, api)| {
                Arc::new(TenantRunner::new(
                    tenant,
                    api,
                    Arc::clone(&mailer),
                    Arc::clone(&clock),
                    &config.state_dir,
                    config.schedule.settle,
                ))
            })
            .collect();
        Ok(Service { config, runners })
    }

    /// Shows row progress through `progress` (interactive `once`).
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        let runners = self
            .runners
            .into_iter()
            .map(|r| {
                let r = Arc::try_unwrap(r)
                    .unwrap_or_else(|_| unreachable!("runners are not shared yet"));
                Arc::new(r.with_progress(Arc::clone(&progress)))
            })
            .collect();
        Service {
            config: self.config,
            runners,
        }
    }

    /// The configuration the service runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One pass over every tenant, side by side.
    pub async fn once(&self, shutdown: watch::Receiver<bool>) -> OnceReport {
        // A task per tenant: one tenant's slow or failing pass never holds up another's.
        let passes = self.runners.iter().map(|r| {
            let runner = Arc::clone(r);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { runner.pass(shutdown).await })
        });
        let results = join_all(passes).await;
        let tenants = results
            .into_iter()
            .zip(&self.runners)
            .map(|(result, runner)| {
                result.unwrap_or_else(|e| TenantPass {
                    tenant: runner.tenant().name.clone(),
                    fault: Some(format!("the pass failed: {e}")),
                    ..TenantPass::default()
                })
            })
            .collect();
        OnceReport { tenants }
    }

    /// The service loop: a pass per tenant at start, every `interval`, and `settle` after a file
    /// event in its drop folder; returns once `shutdown` turns true and passes in hand are done.
    pub async fn run(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), opscom_scheduler::WatchError> {
        let drop_dirs: Vec<_> = self
            .config
            .tenants
            .iter()
            .map(|t| t.drop_dir.clone())
            .collect();
        let cfg = ScheduleConfig {
            interval: self.config.schedule.interval,
            settle: self.config.schedule.settle,
        };
        let runners = self.runners.clone();
        let pass_shutdown = shutdown.clone();
        let settle = self.config.schedule.settle;
        let mut stop = shutdown;
        info!(tenants = self.runners.len(), "service started");
        opscom_scheduler::run_watched(
            &drop_dirs,
            cfg,
            move |i: usize| {
                let runner = Arc::clone(&runners[i]);
                let shutdown = pass_shutdown.clone();
                async move {
                    // Uploads still settling get their pass once they have settled, without
                    // waiting for the next interval or another file event.
                    loop {
                        let pass = runner.pass(shutdown.clone()).await;
                        crate::log_pass(&pass);
                        if pass.settling == 0 || pass.fault.is_some() {
                            break;
                        }
                        let mut stop = shutdown.clone();
                        tokio::select! {
                            () = tokio::time::sleep(settle + opscom_scheduler::EVENT_MARGIN) => {}
                            _ = stop.wait_for(|s| *s) => break,
                        }
                    }
                }
            },
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await
    }
}

//! The human text of `status` and `history`: a compact list per tenant, a table of files.

use std::fmt::Write as _;

use super::{FileEntry, HistoryReport, StatusReport, TenantStatus, Unreadable};

/// `status` for a terminal: one block per tenant, then what could not be read.
pub fn status_text(report: &StatusReport) -> String {
    let mut out = String::new();
    for (i, t) in report.tenants.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        tenant(&mut out, t);
    }
    if report.tenants.is_empty() {
        out.push_str("no tenants\n");
    }
    unreadable(&mut out, &report.unreadable);
    out
}

fn tenant(out: &mut String, t: &TenantStatus) {
    let _ = writeln!(out, "{}", t.name);
    match &t.last_file {
        Some(f) => {
            let _ = writeln!(
                out,
                "  last file       {}  {}  {}  {}",
                f.file,
                f.at,
                f.outcome,
                rows(f)
            );
            if let Some(r) = &f.reason {
                let _ = writeln!(out, "                  {r}");
            }
        }
        None => out.push_str("  last file       none recorded\n"),
    }
    if t.waiting.is_empty() {
        out.push_str("  waiting         none\n");
    } else {
        let _ = writeln!(out, "  waiting         {}", t.waiting.len());
        for w in &t.waiting {
            let since = w
                .since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default();
            let detail = w
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let _ = writeln!(out, "    {}  {}{since}{detail}", w.file, w.reason);
        }
    }
    let _ = writeln!(out, "  unsent reports  {}", t.unsent_reports);
    if t.alerts.is_empty() {
        out.push_str("  alerts          none\n");
    } else {
        for (i, a) in t.alerts.iter().enumerate() {
            let label = if i == 0 { "alerts" } else { "" };
            let since = a
                .since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default();
            let detail = a
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let notified = if a.notified {
                ""
            } else {
                " (not notified yet)"
            };
            let _ = writeln!(out, "  {label:<15} {}{since}{detail}{notified}", a.name);
        }
    }
    match &t.last_problem {
        Some(p) => {
            let _ = writeln!(
                out,
                "  last problem    {}  {}  {}: {}",
                p.file,
                p.at,
                p.outcome,
                p.reason.as_deref().unwrap_or("(no reason recorded)")
            );
        }
        None => out.push_str("  last problem    none recorded\n"),
    }
    if let Some(c) = &t.last_condition {
        let _ = writeln!(out, "  last alert      {}  {}", c.at, c.what);
    }
}

fn rows(f: &FileEntry) -> String {
    if f.rows_unchanged > 0 {
        format!(
            "rows {} ({} ok, {} unchanged, {} failed)",
            f.rows_total, f.rows_ok, f.rows_unchanged, f.rows_failed
        )
    } else {
        format!(
            "rows {} ({} ok, {} failed)",
            f.rows_total, f.rows_ok, f.rows_failed
        )
    }
}

fn unreadable(out: &mut String, list: &[Unreadable]) {
    if list.is_empty() {
        return;
    }
    out.push_str("\ncould not read (the rest stands; permission denied: run as the service's user or root):\n");
    for u in list {
        let _ = writeln!(out, "  {}: {}", u.path, u.error);
    }
}

/// `history` for a terminal: a table, newest first.
pub fn history_text(report: &HistoryReport) -> String {
    let mut out = String::new();
    if report.files.is_empty() {
        let _ = writeln!(out, "no files recorded for {}", report.tenant);
    } else {
        let _ = writeln!(
            out,
            "{:<20}  {:<22}  {:>7}  {:>7}  {:>7}  file",
            "at", "outcome", "rows", "ok", "failed"
        );
        for f in &report.files {
            let mut line = format!(
                "{:<20}  {:<22}  {:>7}  {:>7}  {:>7}  {}",
                f.at,
                f.outcome.to_string(),
                f.rows_total,
                f.rows_ok,
                f.rows_failed,
                f.file
            );
            if let Some(a) = f.archived_as.as_deref().filter(|a| *a != f.file) {
                let _ = write!(line, " (.bak/{a})");
            }
            if let Some(r) = &f.reason {
                let _ = write!(line, ": {r}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    unreadable(&mut out, &report.unreadable);
    out
}

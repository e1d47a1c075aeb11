//! The drop-folder lifecycle (ready, claim, archive) and the periodic task (interval, file events, tenant lock, shutdown).

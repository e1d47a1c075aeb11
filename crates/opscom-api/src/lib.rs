//! The OPSCOM Push API client: the PushApi trait and its reqwest implementation (retries, backoff, limits, classification).

//! The OPSCOM Push API's user attributes: possible header names, required flags and limits, as data.

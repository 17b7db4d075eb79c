// SPDX-License-Identifier: MIT OR Apache-2.0
//! The core's tables as JavaScript sees them: the constants `index.js` exports by name, and the
//! option table (for the parity test, which compares both packages against the core).

use std::collections::HashMap;

use napi_derive::napi;
use txcoord::binding::options;

/// One option of the core's tables (`binding::options::describe`).
#[napi(object)]
pub struct OptionInfo {
    /// `acquire`, `manager`, `lock` or `client`.
    pub table: String,
    /// The core's (Rust) name.
    pub name: String,
    /// The Python keyword.
    pub python: String,
    /// The JavaScript property.
    pub js: String,
    /// `millis`, `priority`, `flag`, `owner_id` or `text`.
    pub kind: String,
    /// For `millis`: the accepted range, in ms.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The default, as documentation shows it.
    pub default: String,
    pub doc: String,
}

/// The constants both packages export (`PROTOCOL_VERSION`, `DEFAULT_TTL_MS`, `MAX_MS`, ...),
/// by name.
#[napi(catch_unwind, ts_return_type = "Record<string, number>")]
pub fn constants() -> HashMap<String, f64> {
    options::constants()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value as f64))
        .collect()
}

/// The error codes by the core's kind name (`LockLost` → `TXCOORD_LOCK_LOST`), for errors the
/// JavaScript layer raises about state only it sees (the end of a leadership term).
#[napi(
    js_name = "errorCodes",
    catch_unwind,
    ts_return_type = "Record<string, string>"
)]
pub fn error_codes() -> HashMap<String, String> {
    txcoord::ErrorKind::ALL
        .iter()
        .map(|k| (format!("{k:?}"), k.code().to_string()))
        .collect()
}

/// Every option of the core's tables.
#[napi(js_name = "optionTable", catch_unwind)]
pub fn option_table() -> Vec<OptionInfo> {
    options::describe()
        .into_iter()
        .map(|o| OptionInfo {
            table: o.table.to_string(),
            name: o.name.to_string(),
            python: o.python.to_string(),
            js: o.js.to_string(),
            kind: o.kind.to_string(),
            min: o.min.map(|v| v as f64),
            max: o.max.map(|v| v as f64),
            default: o.default.to_string(),
            doc: o.doc.to_string(),
        })
        .collect()
}

// SPDX-License-Identifier: MIT OR Apache-2.0
//! Alert sinks: the built-in ones (the log, Prometheus Alertmanager) and a user's own object
//! with the seed's `send(alert)`, behind one native class the monitor takes (the JavaScript
//! classes `LogAlertSink` and `AlertmanagerSink` wrap it). Alerts cross between JavaScript and
//! Rust as JSON: the JavaScript layer stringifies and parses, this module judges the fields.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde_json::{json, Map, Value};
use txcoord::binding::monitor::{self as table, ALERTMANAGER};
use txcoord::binding::options::Host as Lang;
use txcoord::binding::validate::{self, Raw};
use txcoord::{Alert, AlertSink, AlertmanagerSink, BoxFuture, Error, LogAlertSink, Severity};

use crate::bridge::{self, Prep};
use crate::callback::Ignored;
use crate::client::unknown;
use crate::error;
use crate::metrics::JsTransactionMetricsCollector;
use crate::object;
use crate::raw::{self, Host, Options};

// -- alerts as JSON --------------------------------------------------------------------------

const SEVERITIES: &[&str] = &["info", "warning", "critical"];

/// An alert as the JavaScript layer hands it to a user's sink (after `JSON.parse`): the seed's
/// `{ severity, summary, description, metadata }`, plus `name`, `labels` (an object) and
/// `resolved`.
pub(crate) fn alert_to_json(a: &Alert) -> String {
    let labels: Map<String, Value> = a
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "severity": a.severity.as_str(),
        "summary": a.summary,
        "description": a.description,
        "metadata": a.metadata,
        "name": a.name,
        "labels": labels,
        "resolved": a.resolved,
    })
    .to_string()
}

/// The raw value of a JSON field, for the validators.
fn raw(v: Option<&Value>) -> Raw<'_> {
    match v {
        None => Raw::Absent,
        Some(Value::Null) => Raw::Null,
        Some(Value::Bool(b)) => Raw::Bool(*b),
        Some(Value::Number(n)) => Raw::Float(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(s)) => Raw::Str(s),
        Some(Value::Array(_)) => Raw::Other("an array"),
        Some(Value::Object(_)) => Raw::Other("an object"),
    }
}

fn required<'a>(arg: &'static str, v: Option<&'a Value>) -> txcoord::Result<&'a str> {
    validate::string(arg, raw(v))?.ok_or_else(|| Error::invalid_type(arg, "is required (a string)"))
}

/// An alert from the JSON of what a user passed to `send(alert)`: `severity` (`info`,
/// `warning` or `critical`), `summary` and `description` (strings) are required; `metadata`
/// (anything; default `{}`), `name` (a string), `labels` (an object of strings) and `resolved`
/// (a boolean) are not.
pub(crate) fn alert_from_json(text: &str) -> txcoord::Result<Alert> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid_argument("alert", format!("is not valid JSON: {e}")))?;
    let Value::Object(o) = value else {
        return Err(validate::wrong_type(
            "alert",
            "an object",
            raw(Some(&value)),
        ));
    };
    let severity = match validate::one_of("severity", raw(o.get("severity")), SEVERITIES)? {
        Some("info") => Severity::Info,
        Some("warning") => Severity::Warning,
        Some(_) => Severity::Critical,
        None => return Err(Error::invalid_type("severity", "is required (a string)")),
    };
    let mut labels = Vec::new();
    match o.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(v) = validate::string("labels", raw(Some(v)))? else {
                    return Err(Error::invalid_type("labels", "its values must be strings"));
                };
                labels.push((k.clone(), v.to_string()));
            }
        }
        Some(other) => {
            return Err(validate::wrong_type(
                "labels",
                "an object of label names to values",
                raw(Some(other)),
            ))
        }
    }
    Ok(Alert {
        severity,
        summary: required("summary", o.get("summary"))?.to_string(),
        description: required("description", o.get("description"))?.to_string(),
        metadata: match o.get("metadata") {
            None | Some(Value::Null) => json!({}),
            Some(m) => m.clone(),
        },
        name: validate::string("name", raw(o.get("name")))?
            .unwrap_or_default()
            .to_string(),
        labels,
        resolved: validate::flag("resolved", raw(o.get("resolved")))?.unwrap_or(false),
    })
}

// -- a user's sink ---------------------------------------------------------------------------

/// `send(alertJson)`: the JavaScript layer calls the user's `send(JSON.parse(alertJson))` and
/// returns its promise. Weak: it never keeps Node alive.
type SendFn = ThreadsafeFunction<String, Promise<Ignored>, String, Status, false, true>;

struct ForeignSink {
    send: SendFn,
}

impl AlertSink for ForeignSink {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, txcoord::Result<()>> {
        let json = alert_to_json(alert);
        Box::pin(async move {
            let failed = |e: napi::Error| {
                Error::Internal(format!("the alert manager's send() failed: {}", e.reason))
            };
            let promise = self.send.call_async(json).await.map_err(failed)?;
            promise.await.map_err(failed)?;
            Ok(())
        })
    }
}

// -- the native class ------------------------------------------------------------------------

/// Where the monitor's alerts go: the log (`AlertSink.log()`), Prometheus Alertmanager
/// (`AlertSink.alertmanager(...)`) or a user's object (`AlertSink.foreign(send)`).
#[napi(js_name = "AlertSink")]
pub struct JsAlertSink {
    pub(crate) inner: Arc<dyn AlertSink>,
    alertmanager: Option<AlertmanagerSink>,
}

/// The base URLs of `urls`: one string, or an array of strings.
unsafe fn read_urls(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<std::result::Result<Vec<String>, Error>> {
    let bad = |got: &str| {
        Error::invalid_type(
            "urls",
            format!("must be an Alertmanager URL or an array of them, got {got}"),
        )
    };
    let host = raw::read(env, value)?;
    if let Host::Str(s) = host {
        return Ok(Ok(vec![s]));
    }
    let Some(items) = object::elements(env, value)? else {
        return Ok(Err(bad(raw::type_name(&host))));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let h = raw::read(env, item)?;
        match raw::optional_str("urls", &h) {
            Ok(Some(s)) => out.push(s.to_string()),
            Ok(None) => return Ok(Err(bad("an array holding undefined"))),
            Err(_) => {
                return Ok(Err(bad(&format!(
                    "an array holding {}",
                    raw::type_name(&h)
                ))))
            }
        }
    }
    Ok(Ok(out))
}

fn build_alertmanager(
    env: sys::napi_env,
    urls: &Unknown,
    options: &Unknown,
    metrics: Option<&JsTransactionMetricsCollector>,
) -> std::result::Result<AlertmanagerSink, Prep> {
    // SAFETY: on the JavaScript thread, inside the factory, with live handles.
    let urls = unsafe { read_urls(env, urls.raw()) }??;
    let bag = unsafe { Options::new(env, options.raw(), "options") }??;
    let mut opts = unsafe { bag.read(ALERTMANAGER, &[]) }?;
    match unsafe { bag.get(c"labels") }? {
        Host::Absent | Host::Null => {}
        Host::Other("an object") => {
            let labels = unsafe { object::property(env, options.raw(), c"labels") }?;
            for (name, value) in unsafe { object::entries(env, labels) }? {
                let value = unsafe { raw::read(env, value) }?;
                opts = table::label(
                    Lang::Node,
                    opts,
                    name.text("labels")?,
                    value.text("labels")?,
                )?;
            }
        }
        other => {
            return Err(Prep::Core(Error::invalid_type(
                "labels",
                format!(
                    "must be an object of label names to values, got {}",
                    raw::type_name(&other)
                ),
            )))
        }
    }
    if let Some(m) = metrics {
        opts = opts.set_metrics(&m.inner);
    }
    Ok(AlertmanagerSink::new(&urls, opts)?)
}

fn counts(list: Vec<(String, u64)>) -> HashMap<String, f64> {
    list.into_iter().map(|(k, n)| (k, n as f64)).collect()
}

#[napi]
impl JsAlertSink {
    /// Alerts to txcoord's log (see `setLogger`): warnings and criticals as `warn` records,
    /// the rest as `info`.
    #[napi(factory, catch_unwind)]
    pub fn log() -> Self {
        JsAlertSink {
            inner: Arc::new(LogAlertSink),
            alertmanager: None,
        }
    }

    /// Alerts posted to Prometheus Alertmanager's API v2 at every base URL of `urls` (the
    /// replicas of one cluster). Options: `timeout` (ms, default 5000), `endsAfter` (ms),
    /// `generatorUrl`, `labels` (added to every alert); deliveries counted in `metrics`.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "urls: string | string[], options?: { timeout?: number, endsAfter?: number, generatorUrl?: string, labels?: Record<string, string> }, metrics?: TransactionMetricsCollector | undefined | null"
    )]
    pub fn alertmanager(
        env: Env,
        urls: Unknown,
        options: Unknown,
        metrics: Option<&JsTransactionMetricsCollector>,
    ) -> Result<Self> {
        match build_alertmanager(env.raw(), &urls, &options, metrics) {
            Ok(sink) => Ok(JsAlertSink {
                inner: Arc::new(sink.clone()),
                alertmanager: Some(sink),
            }),
            Err(Prep::Core(e)) => Err(error::throw(env.raw(), &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// A user's sink: `send(alertJson)` calls the user's `send(alert)` and returns its promise.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "send: (alert: string) => Promise<unknown>"
    )]
    pub fn foreign(send: SendFn) -> Self {
        JsAlertSink {
            inner: Arc::new(ForeignSink { send }),
            alertmanager: None,
        }
    }

    /// The seed's `send(alert)`, with the alert as JSON.
    #[napi(
        catch_unwind,
        ts_args_type = "alert: string",
        ts_return_type = "Promise<void>"
    )]
    pub fn send<'env>(&self, env: &'env Env, alert: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let sink = self.inner.clone();
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let host = unsafe { raw::read(raw_env, alert.raw()) }?;
            let alert = alert_from_json(raw::optional_str("alert", &host)?.unwrap_or("null"))?;
            Ok(async move { bridge::settle(sink.send(&alert).await) })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The Alertmanagers posted to (their URLs without credentials); empty for other sinks.
    #[napi(getter, catch_unwind)]
    pub fn alertmanagers(&self) -> Vec<String> {
        self.alertmanager
            .as_ref()
            .map(AlertmanagerSink::alertmanagers)
            .unwrap_or_default()
    }

    /// Deliveries each Alertmanager accepted: `{ url: count }`.
    #[napi(catch_unwind, ts_return_type = "Record<string, number>")]
    pub fn sent(&self) -> HashMap<String, f64> {
        counts(
            self.alertmanager
                .as_ref()
                .map(AlertmanagerSink::sent)
                .unwrap_or_default(),
        )
    }

    /// Deliveries that failed, per Alertmanager: `{ url: count }`.
    #[napi(catch_unwind, ts_return_type = "Record<string, number>")]
    pub fn send_failures(&self) -> HashMap<String, f64> {
        counts(
            self.alertmanager
                .as_ref()
                .map(AlertmanagerSink::send_failures)
                .unwrap_or_default(),
        )
    }
}

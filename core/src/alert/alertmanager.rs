// SPDX-License-Identifier: MIT OR Apache-2.0
//! `AlertmanagerSink`: alerts posted to Prometheus Alertmanager (API v2, `POST /api/v2/alerts`),
//! to every replica given.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{Alert, AlertSink};
use crate::binding::validate;
use crate::error::{Error, Result};
use crate::metrics::{AlertCounters, TransactionMetricsCollector};
use crate::saga::BoxFuture;

/// The default time one post may take, connection included.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(5);

/// The `alertname` of an alert sent without a name.
const UNNAMED: &str = "TxcoordAlert";

/// Settings of an [`AlertmanagerSink`].
#[derive(Clone, Default)]
pub struct AlertmanagerOptions {
    timeout: Option<Duration>,
    metrics: Option<TransactionMetricsCollector>,
    ends_after: Option<Duration>,
    generator_url: Option<String>,
    labels: Vec<(String, String)>,
}

impl std::fmt::Debug for AlertmanagerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerOptions")
            .field("timeout", &self.timeout)
            .field("metrics", &self.metrics.is_some())
            .field("ends_after", &self.ends_after)
            .field("generator_url", &self.generator_url)
            .field("labels", &self.labels)
            .finish()
    }
}

impl AlertmanagerOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// How long one post to one Alertmanager may take, connecting included (default 5 s).
    /// Replicas are posted to at once, so a `send` takes at most about this long.
    pub fn set_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Where deliveries are counted: `txcoord_alerts_sent_total{alertmanager}` and
    /// `txcoord_alert_send_failures_total{alertmanager}` of this collector (default: counters
    /// of the sink's own, read with [`AlertmanagerSink::send_failures`]).
    pub fn set_metrics(mut self, collector: &TransactionMetricsCollector) -> Self {
        self.metrics = Some(collector.clone());
        self
    }
    /// Active alerts are sent with `endsAt` this far ahead, so Alertmanager resolves them by
    /// itself if they stop being re-sent (the sender died). Default: none sent, and
    /// Alertmanager's `resolve_timeout` (5 min by default) applies. Keep it above a few times
    /// the monitor's interval.
    pub fn set_ends_after(mut self, d: Duration) -> Self {
        self.ends_after = Some(d);
        self
    }
    /// The `generatorURL` of every alert (a link back to the sender, e.g. its dashboard).
    pub fn set_generator_url(mut self, url: impl Into<String>) -> Self {
        self.generator_url = Some(url.into());
        self
    }
    /// A label added to every alert (e.g. `env`, `service`); an alert's own labels win.
    pub fn set_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// One Alertmanager: where to post, and its name in the counters (no credentials).
struct Target {
    post: reqwest::Url,
    label: String,
}

struct Inner {
    http: reqwest::Client,
    targets: Vec<Target>,
    counters: AlertCounters,
    ends_after: Option<Duration>,
    generator_url: Option<String>,
    labels: Vec<(String, String)>,
    // A std mutex: a map updated while a payload is built, never held across an await.
    /// When each active alert (by its label set) started, kept across re-sends.
    started: Mutex<HashMap<String, SystemTime>>,
}

/// An [`AlertSink`] that posts to Prometheus Alertmanager's API v2 (`POST /api/v2/alerts`).
///
/// ## Behavior
///
/// - Alertmanager knows an alert by its labels only. Stable facts are labels: `alertname` (the
///   alert's `name`), `severity`, `saga_type` and `saga_id` (from the alert's metadata
///   `sagaType` and `sagaId` when it has them), the alert's own `labels` and the options' ones.
///   Changing values are annotations: `summary`, `description`, and every metadata value as a
///   string (strings as they are, other values as JSON). Names that are not valid label names
///   have their other characters replaced by `_`.
/// - An active alert is re-sent each time `send` is called with it (as the monitor does every
///   pass), with the `startsAt` of its first send, which the sink remembers by label set until
///   the alert is resolved. A resolved alert (`resolved: true`) is sent with `endsAt` now.
/// - Every Alertmanager given (the replicas of one cluster) is posted to, all at once, each
///   within the timeout. Each failure (refused, unreachable, timed out, an error status) is
///   counted in `txcoord_alert_send_failures_total{alertmanager}` and logged; `send` fails
///   only when no Alertmanager accepted the alert. Nothing is retried: the next `send` of an
///   active alert is its retry.
/// - `http://` and `https://` (rustls, the system's roots) URLs, with an optional path prefix
///   (`http://am:9093/alertmanager`) and credentials (`https://user:pass@am`, sent as basic
///   auth and left out of the counters' label).
#[derive(Clone)]
pub struct AlertmanagerSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AlertmanagerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerSink")
            .field("alertmanagers", &self.alertmanagers())
            .finish()
    }
}

/// The URL to post to for the base URL `raw`, and its label (scheme, host, port, path).
fn target(raw: &str) -> Result<Target> {
    let bad = |why: String| Error::invalid_argument("urls", format!("{raw:?} {why}"));
    let url = reqwest::Url::parse(raw).map_err(|e| bad(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment".into()));
    }
    let mut post = url.clone();
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    post.set_path(&path);
    let mut label = url.clone();
    let _ = label.set_username("");
    let _ = label.set_password(None);
    let label = label.as_str().trim_end_matches('/').to_string();
    Ok(Target { post, label })
}

/// `name` as a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, other characters as `_`.
fn label_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Some(out)
}

/// A metadata value as an annotation: strings as they are, other values as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 3339 in UTC with milliseconds, as Alertmanager reads it: `2026-01-02T03:04:05.678Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl AlertmanagerSink {
    /// A sink posting to every Alertmanager of `urls` (base URLs such as
    /// `http://127.0.0.1:9093`; the replicas of one cluster).
    pub fn new<S: AsRef<str>>(
        urls: &[S],
        options: AlertmanagerOptions,
    ) -> Result<AlertmanagerSink> {
        if urls.is_empty() {
            return Err(Error::invalid_argument(
                "urls",
                "must name at least one Alertmanager",
            ));
        }
        let targets = urls
            .iter()
            .map(|u| target(u.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let timeout = validate::duration(
            "timeout",
            options.timeout.unwrap_or(DEFAULT_ALERTMANAGER_TIMEOUT),
            1,
            validate::MAX_MS,
        )?;
        if let Some(d) = options.ends_after {
            validate::duration("ends_after", d, 1, validate::MAX_MS)?;
        }
        let mut labels = Vec::new();
        for (name, value) in options.labels {
            let Some(name) = label_name(&name) else {
                return Err(Error::invalid_argument("labels", "a label name is empty"));
            };
            labels.push((name, value));
        }
        // rustls needs a process-wide crypto provider; install ring's unless one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("txcoord/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client for Alertmanager: {e}")))?;
        let counters = options
            .metrics
            .map(|m| m.alert_counters())
            .unwrap_or_else(AlertCounters::new);
        for t in &targets {
            // the series exist from the start, at 0
            counters.sent.with_label_values(&[&t.label]);
            counters.failures.with_label_values(&[&t.label]);
        }
        Ok(AlertmanagerSink {
            inner: Arc::new(Inner {
                http,
                targets,
                counters,
                ends_after: options.ends_after,
                generator_url: options.generator_url,
                labels,
                started: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The Alertmanagers posted to, as named in the counters (without credentials).
    pub fn alertmanagers(&self) -> Vec<String> {
        self.inner.targets.iter().map(|t| t.label.clone()).collect()
    }

    /// Failed deliveries so far, per Alertmanager (as named by [`alertmanagers`](Self::alertmanagers)).
    pub fn send_failures(&self) -> Vec<(String, u64)> {
        self.count(&self.inner.counters.failures)
    }

    /// Accepted deliveries so far, per Alertmanager.
    pub fn sent(&self) -> Vec<(String, u64)> {
        self.count(&self.inner.counters.sent)
    }

    fn count(&self, vec: &prometheus::IntCounterVec) -> Vec<(String, u64)> {
        self.inner
            .targets
            .iter()
            .map(|t| (t.label.clone(), vec.with_label_values(&[&t.label]).get()))
            .collect()
    }

    /// The labels Alertmanager will know `alert` by.
    pub fn labels_of(&self, alert: &Alert) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        for (name, value) in &self.inner.labels {
            l.insert(name.clone(), value.clone());
        }
        if let Some(meta) = alert.metadata.as_object() {
            for (key, name) in [("sagaType", "saga_type"), ("sagaId", "saga_id")] {
                if let Some(v) = meta.get(key).filter(|v| !v.is_null()) {
                    l.insert(name.to_string(), as_text(v));
                }
            }
        }
        for (name, value) in &alert.labels {
            if let Some(name) = label_name(name) {
                l.insert(name, value.clone());
            }
        }
        let name = if alert.name.is_empty() {
            UNNAMED
        } else {
            &alert.name
        };
        l.insert("alertname".into(), name.to_string());
        l.insert("severity".into(), alert.severity.as_str().to_string());
        // an empty value is no label to Alertmanager
        l.retain(|_, v| !v.is_empty());
        l
    }

    /// The JSON body of one alert as it would be posted now (an array of one alert), updating
    /// what the sink remembers of its start.
    pub fn payload(&self, alert: &Alert) -> Value {
        let labels = self.labels_of(alert);
        let key: String = labels
            .iter()
            .flat_map(|(k, v)| [k.as_str(), "\u{0}", v.as_str(), "\u{0}"])
            .collect();
        let now = SystemTime::now();
        let starts = {
            let mut started = self.inner.started.lock().unwrap_or_else(|p| p.into_inner());
            if alert.resolved {
                started.remove(&key).unwrap_or(now)
            } else {
                *started.entry(key).or_insert(now)
            }
        };
        let mut annotations = Map::new();
        annotations.insert("summary".into(), json!(alert.summary));
        annotations.insert("description".into(), json!(alert.description));
        match &alert.metadata {
            Value::Object(meta) => {
                for (k, v) in meta {
                    if let Some(name) = label_name(k) {
                        annotations.entry(name).or_insert_with(|| json!(as_text(v)));
                    }
                }
            }
            Value::Null => {}
            other => {
                annotations.insert("metadata".into(), json!(other.to_string()));
            }
        }
        let mut a = Map::new();
        a.insert("labels".into(), json!(labels));
        a.insert("annotations".into(), Value::Object(annotations));
        a.insert("startsAt".into(), json!(rfc3339(starts)));
        let ends = if alert.resolved {
            Some(now)
        } else {
            self.inner.ends_after.map(|d| now + d)
        };
        if let Some(ends) = ends {
            a.insert("endsAt".into(), json!(rfc3339(ends)));
        }
        if let Some(url) = &self.inner.generator_url {
            a.insert("generatorURL".into(), json!(url));
        }
        Value::Array(vec![Value::Object(a)])
    }
}

/// Posts `body` to one Alertmanager: `Ok` once it answered 2xx, else why not.
async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: Bytes,
) -> std::result::Result<(), String> {
    let reply = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("timed out: {e}")
            } else {
                e.to_string()
            }
        })?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let text = reply.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err(format!("answered {status}: {}", text.trim()))
}

impl AlertSink for AlertmanagerSink {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, Result<()>> {
        let body = Bytes::from(self.payload(alert).to_string());
        let name = alert.name.clone();
        Box::pin(async move {
            let inner = &self.inner;
            let mut posts = tokio::task::JoinSet::new();
            for (i, t) in inner.targets.iter().enumerate() {
                let http = inner.http.clone();
                let url = t.post.clone();
                let body = body.clone();
                posts.spawn(async move { (i, post(&http, &url, body).await) });
            }
            let mut accepted = 0usize;
            let mut errors = Vec::new();
            while let Some(done) = posts.join_next().await {
                let (i, outcome) = match done {
                    Ok(x) => x,
                    Err(e) => {
                        errors.push(format!("a post did not finish: {e}"));
                        continue;
                    }
                };
                let label = &inner.targets[i].label;
                match outcome {
                    Ok(()) => {
                        accepted += 1;
                        inner.counters.sent.with_label_values(&[label]).inc();
                    }
                    Err(why) => {
                        inner.counters.failures.with_label_values(&[label]).inc();
                        tracing::warn!(
                            target: "txcoord",
                            "txcoord: alert {name:?} not delivered to Alertmanager {label}: {why}"
                        );
                        errors.push(format!("{label}: {why}"));
                    }
                }
            }
            if accepted > 0 {
                Ok(())
            } else {
                Err(Error::connection(format!(
                    "no Alertmanager accepted alert {name:?}: {}",
                    errors.join("; ")
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = |ms: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789
        assert_eq!(t(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(t(1_767_225_599_999), "2025-12-31T23:59:59.999Z");
        assert_eq!(t(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn urls_are_checked_and_labelled_without_credentials() {
        let t = target("https://user:secret@am.example:9443/prefix/").unwrap();
        assert_eq!(
            t.post.as_str(),
            "https://user:secret@am.example:9443/prefix/api/v2/alerts"
        );
        assert_eq!(t.label, "https://am.example:9443/prefix");
        let t = target("http://127.0.0.1:9093").unwrap();
        assert_eq!(t.post.as_str(), "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(t.label, "http://127.0.0.1:9093");
        for bad in ["", "127.0.0.1:9093", "ftp://x", "http://x/?a=b", "http://"] {
            let e = AlertmanagerSink::new(&[bad], AlertmanagerOptions::new()).unwrap_err();
            assert_eq!(e.argument(), Some("urls"), "{bad}");
        }
        let none: [&str; 0] = [];
        let e = AlertmanagerSink::new(&none, AlertmanagerOptions::new()).unwrap_err();
        assert_eq!(e.argument(), Some("urls"));
        let e = AlertmanagerSink::new(
            &["http://127.0.0.1:1"],
            AlertmanagerOptions::new().set_timeout(Duration::ZERO),
        )
        .unwrap_err();
        assert_eq!(e.argument(), Some("timeout"));
    }

    #[test]
    fn stable_facts_are_labels_and_changing_values_annotations() {
        let sink = AlertmanagerSink::new(
            &["http://127.0.0.1:1"],
            AlertmanagerOptions::new().set_label("env", "test"),
        )
        .unwrap();
        let alert = Alert {
            severity: Severity::Critical,
            summary: "Stuck saga detected: CreateOrderSaga".into(),
            description: "Saga s-1 appears to be stuck".into(),
            metadata: json!({
                "sagaId": "s-1", "sagaType": "CreateOrderSaga", "stuckDuration": 61000,
                "cycles": [["a", "b", "a"]], "bad-key": true,
            }),
            name: "StuckSaga".into(),
            labels: vec![("reason".into(), "no-progress".into())],
            resolved: false,
        };
        let body = sink.payload(&alert);
        let a = &body[0];
        assert_eq!(
            a["labels"],
            json!({
                "alertname": "StuckSaga", "severity": "critical", "saga_type": "CreateOrderSaga",
                "saga_id": "s-1", "reason": "no-progress", "env": "test",
            })
        );
        assert_eq!(a["annotations"]["summary"], json!(alert.summary));
        assert_eq!(a["annotations"]["description"], json!(alert.description));
        assert_eq!(a["annotations"]["stuckDuration"], json!("61000"));
        assert_eq!(a["annotations"]["cycles"], json!("[[\"a\",\"b\",\"a\"]]"));
        assert_eq!(a["annotations"]["bad_key"], json!("true"));
        assert!(a.get("endsAt").is_none(), "{a}");
        let first = a["startsAt"].clone();
        std::thread::sleep(Duration::from_millis(5));
        let again = sink.payload(&Alert {
            metadata: json!({ "sagaId": "s-1", "sagaType": "CreateOrderSaga", "stuckDuration": 62000 }),
            ..alert.clone()
        });
        assert_eq!(again[0]["startsAt"], first, "kept across re-sends");
        let resolved = sink.payload(&Alert {
            resolved: true,
            ..alert.clone()
        });
        assert_eq!(resolved[0]["startsAt"], first);
        assert!(resolved[0]["endsAt"].as_str().unwrap() > first.as_str().unwrap());
        std::thread::sleep(Duration::from_millis(5));
        let reopened = sink.payload(&alert);
        assert_ne!(reopened[0]["startsAt"], first, "a new episode starts anew");
    }
}

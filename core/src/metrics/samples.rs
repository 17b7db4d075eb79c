// SPDX-License-Identifier: MIT OR Apache-2.0
//! The collector's metrics as plain samples, for a host language's own registry
//! (prometheus_client in Python, prom-client in Node): two text expositions cannot be
//! concatenated, but samples can be handed over one family at a time.

use prometheus::proto::MetricType;

use super::TransactionMetricsCollector;

/// One metric family as a host registry takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name as the text exposition shows it (`saga_compensations_total`).
    pub name: String,
    pub help: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

/// One sample: a histogram's buckets (`_bucket` with `le`, cumulative, `+Inf` last), `_sum`
/// and `_count`; a counter's or gauge's value under the family's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A bucket bound as the text exposition writes it (`0.5`, `1`, `+Inf`).
fn bound(b: f64) -> String {
    if b == f64::INFINITY {
        "+Inf".to_string()
    } else {
        format!("{b}")
    }
}

impl TransactionMetricsCollector {
    /// Every metric as plain samples, in the order of [`gather`](Self::gather).
    pub fn families(&self) -> Vec<Family> {
        convert(self.gather())
    }

    /// Every family the collector exports, also those without a series yet (the seed's
    /// labelled metrics before their first record), without samples: what a host registry
    /// reads to refuse a second collector of the same names.
    pub fn descriptions(&self) -> Vec<Family> {
        let mut families = prometheus::core::Collector::collect(self);
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families.dedup_by(|a, b| a.name() == b.name());
        let mut out = convert(families);
        for f in &mut out {
            f.samples.clear();
        }
        out
    }
}

fn convert(families: Vec<prometheus::proto::MetricFamily>) -> Vec<Family> {
    let mut out = Vec::new();
    for f in families {
        let name = f.name().to_string();
        let kind = match f.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            // the collector has no summaries or untyped metrics
            _ => continue,
        };
        let mut samples = Vec::new();
        for m in f.get_metric() {
            let labels: Vec<(String, String)> = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let sample = |suffix: &str, extra: Option<(String, String)>, value: f64| Sample {
                name: format!("{name}{suffix}"),
                labels: labels.iter().cloned().chain(extra).collect(),
                value,
            };
            match kind {
                "counter" => samples.push(sample("", None, m.get_counter().get_value())),
                "gauge" => samples.push(sample("", None, m.get_gauge().get_value())),
                _ => {
                    let h = m.get_histogram();
                    let mut infinite = false;
                    for b in h.get_bucket() {
                        infinite |= b.upper_bound() == f64::INFINITY;
                        samples.push(sample(
                            "_bucket",
                            Some(("le".into(), bound(b.upper_bound()))),
                            b.cumulative_count() as f64,
                        ));
                    }
                    if !infinite {
                        samples.push(sample(
                            "_bucket",
                            Some(("le".into(), "+Inf".into())),
                            h.get_sample_count() as f64,
                        ));
                    }
                    samples.push(sample("_sum", None, h.get_sample_sum()));
                    samples.push(sample("_count", None, h.get_sample_count() as f64));
                }
            }
        }
        out.push(Family {
            name,
            help: f.help().to_string(),
            kind,
            samples,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_counters_and_gauges_become_samples() {
        let c = TransactionMetricsCollector::new();
        c.record_saga_execution("CreateOrderSaga", "completed", 1_500.0)
            .unwrap();
        c.record_compensation("CreateOrderSaga", "payment", "declined")
            .unwrap();
        let families = c.families();
        let sagas = families
            .iter()
            .find(|f| f.name == "saga_execution_duration_seconds")
            .unwrap();
        assert_eq!(sagas.kind, "histogram");
        assert_eq!(sagas.help, "Duration of saga execution");
        let buckets: Vec<(&str, f64)> = sagas
            .samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .map(|s| (s.labels.last().unwrap().1.as_str(), s.value))
            .collect();
        assert_eq!(buckets[0], ("0.5", 0.0));
        assert_eq!(buckets[1], ("1", 0.0));
        assert_eq!(buckets[2], ("2", 1.0));
        assert_eq!(*buckets.last().unwrap(), ("+Inf", 1.0));
        assert_eq!(buckets.len(), 11);
        let sum = sagas
            .samples
            .iter()
            .find(|s| s.name.ends_with("_sum"))
            .unwrap();
        assert_eq!(sum.value, 1.5);
        assert_eq!(
            sum.labels,
            vec![
                ("saga_type".to_string(), "CreateOrderSaga".to_string()),
                ("status".to_string(), "completed".to_string())
            ]
        );
        let comp = families
            .iter()
            .find(|f| f.name == "saga_compensations_total")
            .unwrap();
        assert_eq!(comp.kind, "counter");
        assert_eq!(comp.samples[0].name, "saga_compensations_total");
        assert_eq!(comp.samples[0].value, 1.0);
        // described: every family, also those not recorded yet, without samples
        let described = c.descriptions();
        let tx = described
            .iter()
            .find(|f| f.name == "distributed_transaction_duration_seconds")
            .unwrap();
        assert_eq!((tx.kind, tx.samples.len()), ("histogram", 0));
        assert!(!families
            .iter()
            .any(|f| f.name == "distributed_transaction_duration_seconds"));
        assert!(described.iter().all(|f| f.samples.is_empty()));
    }
}

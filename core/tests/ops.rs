// SPDX-License-Identifier: MIT OR Apache-2.0
//! The operations files under `ops/`: the Prometheus alerting rules (checked and unit-tested by
//! the real `promtool`) and the Grafana dashboard, whose every query names only metrics the
//! collector exports.

mod tools;

use std::collections::BTreeSet;
use std::path::PathBuf;

use txcoord::MetricNames;

fn ops(path: &str) -> PathBuf {
    tools::repo_root().join("ops").join(path)
}

/// Every series name the collector can export (both name sets, every family populated), with
/// the `_bucket`, `_sum` and `_count` series of histograms.
fn exported() -> BTreeSet<String> {
    let c = tools::sample::everything(MetricNames::Both);
    let text = c.metrics();
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            out.insert(name.to_string());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
        }
    }
    out
}

/// Words that are never metric names: keywords, and the aggregations (whose grouping may come
/// before their parenthesis).
const KEYWORDS: [&str; 23] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges,
/// strings and groupings that are not functions, aggregations, keywords, numbers or Grafana
/// variables.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    let mut skip_next = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let called = j < chars.len() && chars[j] == '(';
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word.as_str())
                {
                    skip_group = called;
                } else if word == "offset" {
                    skip_next = true;
                } else if std::mem::take(&mut skip_next)
                    || called
                    || KEYWORDS.contains(&word.as_str())
                {
                } else {
                    out.push(word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x=\"y\",le=~\"1|2\"}[$__rate_interval]))) \
             / ignoring(x) group_left(y) (b or c_total offset 5m) > bool 0.5 and on() vector(1) unless d:rec"
        ),
        ["a_bucket", "b", "c_total", "d:rec"]
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_alerting_rules() {
    let rules = ops("prometheus/txcoord-rules.yml");
    let out = tools::promtool(&["check", "rules", rules.to_str().unwrap()], "");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules: {said}");
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
    let tests = ops("prometheus/txcoord-rules.test.yml");
    let out = tools::promtool(&["test", "rules", tests.to_str().unwrap()], "");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool test rules: {said}");
    assert!(said.contains("SUCCESS"), "{said}");

    // a rule on a name the collector does not export is caught by the check below; a broken
    // rule by promtool
    let dir = std::env::temp_dir().join(format!("txcoord-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&rules)
            .unwrap()
            .replace("> 0\n", "> \n"),
    )
    .unwrap();
    let out = tools::promtool(&["check", "rules", broken.to_str().unwrap()], "");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a broken expression fails the check");
}

/// The `expr` values of the rules file (block scalars included).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(rest) = l.trim_start().strip_prefix("expr:") {
            let indent = l.len() - l.trim_start().len();
            let rest = rest.trim();
            if rest.starts_with('>') || rest.starts_with('|') {
                let mut expr = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    expr.push_str(lines[i].trim());
                    expr.push(' ');
                    i += 1;
                }
                out.push(expr);
                continue;
            }
            out.push(rest.to_string());
        }
        i += 1;
    }
    out
}

#[test]
fn the_rules_name_only_metrics_we_export() {
    let exported = exported();
    let yaml = std::fs::read_to_string(ops("prometheus/txcoord-rules.yml")).unwrap();
    let exprs = rule_exprs(&yaml);
    assert_eq!(exprs.len(), 11, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{e}");
        for n in names {
            assert!(
                exported.contains(&n),
                "rule expression {e:?} names {n}, which txcoord does not export"
            );
            used.insert(n);
        }
    }
    // the legacy and convention names of the success rate are both read
    assert!(used.contains("saga_success_rate") && used.contains("txcoord_saga_success_ratio"));
}

#[test]
fn the_dashboards_queries_name_only_metrics_we_export() {
    let exported = exported();
    let text = std::fs::read_to_string(ops("grafana/txcoord-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dash["uid"], "txcoord");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "unique ids"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap()), "unique refIds");
            let expr = t["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(
                    exported.contains(&n),
                    "panel {} queries {n}, which txcoord does not export: {expr}",
                    p["title"]
                );
                used.insert(n);
            }
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries}");
    // every family the collector exports is on the dashboard under some name
    let families: BTreeSet<String> = exported
        .iter()
        .filter(|n| {
            !exported.iter().any(|h| {
                n.strip_suffix("_bucket")
                    .or(n.strip_suffix("_sum"))
                    .or(n.strip_suffix("_count"))
                    == Some(h.as_str())
            })
        })
        .cloned()
        .collect();
    let shown = |f: &String| {
        used.iter().any(|u| {
            u == f || u.strip_suffix("_bucket") == Some(f) || u.strip_suffix("_count") == Some(f)
        })
    };
    let missing: Vec<&String> = families.iter().filter(|f| !shown(f)).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

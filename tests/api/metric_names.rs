//! Every metric the Helm chart's alert rules and Grafana dashboard query is one
//! agentd exports: after a scripted scenario (a Chat turn with a tool call, an
//! Ask grounded in the knowledge base, a failed call, a refused call), each
//! name used in `helm/agentd/files/alerts.yaml` (`expr:`) and
//! `helm/agentd/files/dashboard.json` (panel targets and template variables)
//! is a sample name of the `/metrics` scrape, so a renamed metric cannot
//! silently break an alert or a panel. The label values the queries match on
//! (`grpc_code`, `outcome`, `dependency`, ...) are checked the same way.
//!
//! The TLS series come from a second server that serves TLS and rotates its
//! certificate once. Names from elsewhere (`up`, kube-state-metrics) are in [`EXTERNAL`];
//! recording rules defined in the rules file itself are exempt by definition.
//! There is no YAML crate among the dependencies, so the rules file is read
//! textually: its `expr:` and `record:` keys, which is all this test needs.

use std::collections::{BTreeMap, BTreeSet};

use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{AskRequest, Document, IngestDocumentsRequest};
use agentd_mock_llm::{Completion, MockToolCall, Reply};
use tonic::Code;

use crate::agent::{call, chat, completed, run_chat};
use crate::helpers::{eventually, mock_llm, spawn_agent};

const ALERTS: &str = include_str!("../../helm/agentd/files/alerts.yaml");
const DASHBOARD: &str = include_str!("../../helm/agentd/files/dashboard.json");

/// Metrics the rules use that agentd does not export: Prometheus' own `up`
/// and kube-state-metrics. Each must be used (a stale entry fails the test).
const EXTERNAL: [&str; 3] = [
    "up",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
];

/// Labels whose matched values must be values agentd exports (a renamed
/// outcome breaks a query as surely as a renamed metric). `grpc_code` values
/// are checked against every code name, since a scenario cannot produce them
/// all; the others against the scrape.
const CHECKED_LABELS: [&str; 6] = [
    "grpc_code",
    "outcome",
    "dependency",
    "grounded",
    "cited",
    "gen_ai_token_type",
];

#[tokio::test]
async fn every_metric_and_label_value_the_alerts_and_dashboard_use_is_exported() {
    let scrape = scripted_scenario_scrape().await;
    let scrape = Scrape::parse(&scrape);

    let recorded = recorded_names(ALERTS);
    assert!(
        !recorded.is_empty(),
        "no record: rules found in alerts.yaml"
    );
    let used = used_metric_names();
    // The extraction found the metrics the rules are about, or it is broken.
    for name in [
        "grpc_server_handled_total",
        "agentd_dependency_up",
        "agentd_answers_total",
        "agentd_tool_calls_total",
        "gen_ai_client_token_usage_sum",
        "agentd_time_to_first_token_seconds_bucket",
        "grpc_server_handling_seconds_bucket",
    ] {
        assert!(used.contains_key(name), "{name} not extracted: {used:?}");
    }

    let problems = unknown_names(&used, &scrape, &recorded);
    assert!(
        problems.is_empty(),
        "metric names in the rules or dashboard that agentd's /metrics lacks:\n{}",
        problems.join("\n")
    );
    for external in EXTERNAL {
        assert!(
            used.contains_key(external),
            "{external} is allowlisted but no rule or panel uses it: drop it"
        );
    }

    let matchers = label_matchers(&all_queries());
    assert!(
        matchers.iter().any(|(label, _)| label == "grpc_code")
            && matchers.iter().any(|(label, _)| label == "dependency"),
        "label matchers not extracted: {matchers:?}"
    );
    let problems = unknown_label_values(&matchers, &scrape);
    assert!(
        problems.is_empty(),
        "label values in the rules or dashboard that agentd never exports:\n{}",
        problems.join("\n")
    );
}

/// Runs the scenario against a server on the mock LLM and returns its
/// `/metrics` text.
async fn scripted_scenario_scrape() -> String {
    let mock = mock_llm().await;
    mock.script([
        // Chat: a tool call, then an answer (not grounded).
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion {
            usage: Some((40, 6)),
            ..Completion::text(["It is ", "noon."])
        }),
        // Ask: a knowledge search, then an answer that cites its source.
        Reply::Completion(Completion::tool_calls([MockToolCall {
            id: "call_2".into(),
            name: "search_knowledge".into(),
            arguments: r#"{"query": "freeze window before a release"}"#.into(),
            fragments: 2,
        }])),
        Reply::Completion(Completion {
            usage: Some((120, 12)),
            ..Completion::text(["The freeze starts 48 hours before (eng/release.md)."])
        }),
        // Ask: the provider fails, a server-side fault (UNAVAILABLE).
        Reply::HttpError {
            status: 500,
            retry_after: None,
            message: "upstream is down".into(),
        },
    ]);
    let app = spawn_agent(&mock, "").await;
    RetrievalServiceClient::new(app.channel.clone())
        .ingest_documents(IngestDocumentsRequest {
            collection: String::new(),
            documents: vec![Document {
                doc_id: "eng/release.md".into(),
                text: "Releases ship on Tuesdays. The freeze window starts 48 hours before \
                       each release."
                    .into(),
                metadata: Default::default(),
                source_uri: "https://wiki.example/eng/release.md".into(),
            }],
        })
        .await
        .unwrap();

    let (events, end) = run_chat(&app, chat("What time is it?")).await;
    end.unwrap();
    assert_eq!(completed(&events).answer, "It is noon.");

    let asked = app
        .agent()
        .ask(AskRequest {
            message: "When does the freeze window start?".into(),
            ..AskRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let outcome = asked.outcome.unwrap();
    assert!(
        outcome.sources.iter().any(|s| s.cited),
        "the answer should cite its source: {outcome:?}"
    );

    let failed = app
        .agent()
        .ask(AskRequest {
            message: "And now?".into(),
            ..AskRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    let refused = app.agent().ask(AskRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // The dependency gauges appear with the first health check, which runs
    // beside the server, not before it.
    let up = r#"agentd_dependency_up{dependency="vector_store"}"#;
    eventually(|| async { app.metric(up).await.is_some() }).await;
    let mut scrape = app.metrics().await;
    // The TLS metrics exist only with TLS on: a second server serves TLS, and
    // its TLS series join the scrape (a rotation makes the reload counter).
    let ca = crate::tls::TestCa::new("metric names CA");
    let files = crate::tls::ServerFiles::write(&ca.issue(), None);
    let clock = crate::helpers::manual_clock();
    let tls =
        crate::helpers::spawn_app_built(&files.toml(false), |builder| builder.clock(clock.clone()))
            .await;
    files.replace(&ca.issue());
    clock
        .wait_for_timer(std::time::Duration::from_secs(10))
        .await;
    clock.advance(std::time::Duration::from_secs(10));
    let reloaded = r#"agentd_tls_reloads_total{outcome="ok"}"#;
    eventually(|| async { tls.metric(reloaded).await.is_some() }).await;
    let tls_series = tls.metrics().await;
    scrape.extend(
        tls_series
            .lines()
            .filter(|line| line.starts_with("agentd_tls_"))
            .map(|line| format!("{line}\n")),
    );
    scrape
}

/// Every metric name the rules and the dashboard use, with where it is used.
fn used_metric_names() -> BTreeMap<String, String> {
    let mut used = BTreeMap::new();
    for (place, query) in all_queries() {
        for name in metric_names(&query) {
            used.entry(name).or_insert_with(|| place.clone());
        }
    }
    used
}

/// Every PromQL query of the rules file and the dashboard, each with a
/// description of where it is.
fn all_queries() -> Vec<(String, String)> {
    let rules = rule_exprs(ALERTS)
        .into_iter()
        .enumerate()
        .map(|(i, expr)| (format!("alerts.yaml expr #{}", i + 1), expr));
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    rules.chain(dashboard_queries(&dashboard)).collect()
}

/// The names in `used` that are neither a sample of `scrape`, nor recorded by
/// the rules themselves, nor external, each with why.
fn unknown_names(
    used: &BTreeMap<String, String>,
    scrape: &Scrape,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| {
            !scrape.samples.contains(name.as_str())
                && !recorded.contains(name.as_str())
                && !EXTERNAL.contains(&name.as_str())
        })
        .map(|(name, place)| match scrape.family_of(name) {
            Some((family, kind)) => format!(
                "{name} (in {place}): `# TYPE {family} {kind}` is exported, but no sample \
                 {name}: a suffix that a {kind} does not have, or a series the scenario \
                 does not produce"
            ),
            None => format!("{name} (in {place}): not in the scrape at all"),
        })
        .collect()
}

/// Label matchers on [`CHECKED_LABELS`] whose value no exported series has.
fn unknown_label_values(matchers: &BTreeSet<(String, String)>, scrape: &Scrape) -> Vec<String> {
    let code_names: BTreeSet<&str> = (0..=16)
        .map(|code| agentd::telemetry::metrics::code_name(Code::from_i32(code)))
        .collect();
    matchers
        .iter()
        .filter(|(label, value)| {
            if label == "grpc_code" {
                !code_names.contains(value.as_str())
            } else {
                !scrape
                    .label_values
                    .get(label)
                    .is_some_and(|values| values.contains(value))
            }
        })
        .map(|(label, value)| format!("{label}=\"{value}\""))
        .collect()
}

/// The `expr:` values of a Prometheus rules file: inline, quoted, or a block
/// scalar (`expr: |` and the lines indented below it).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let key = line.trim_start().trim_start_matches("- ");
        i += 1;
        let Some(value) = key.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let mut block = Vec::new();
            while i < lines.len() {
                let next = lines[i];
                let deeper = next.len() - next.trim_start().len() > indent;
                if !next.trim().is_empty() && !deeper {
                    break;
                }
                block.push(next.trim());
                i += 1;
            }
            exprs.push(block.join("\n").trim().to_owned());
        } else if let Some(quoted) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            exprs.push(quoted.replace("\\\"", "\"").replace("\\\\", "\\"));
        } else if let Some(quoted) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            exprs.push(quoted.replace("''", "'"));
        } else {
            exprs.push(value.to_owned());
        }
    }
    exprs
}

/// The names the rules file records (`record: NAME`).
fn recorded_names(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|line| {
            let key = line.trim_start().trim_start_matches("- ");
            let name = key
                .strip_prefix("record:")?
                .trim()
                .trim_matches(['"', '\'']);
            Some(name.to_owned())
        })
        .collect()
}

/// The queries of a Grafana dashboard: every panel target's `expr` (rows
/// nest panels), and the metric queries of its template variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(value: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(object) => {
                let title = object
                    .get("title")
                    .and_then(|t| t.as_str())
                    .unwrap_or(title);
                if let Some(targets) = object.get("targets").and_then(|t| t.as_array()) {
                    for expr in targets.iter().filter_map(|t| t["expr"].as_str()) {
                        out.push((format!("dashboard panel {title:?}"), expr.to_owned()));
                    }
                }
                for (key, child) in object {
                    if key != "targets" && key != "templating" {
                        walk(child, title, out);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, title, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "", &mut out);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let query = match &variable["query"] {
            serde_json::Value::String(query) => query.as_str(),
            other => other["query"].as_str().unwrap_or_default(),
        };
        let place = format!("dashboard variable ${}", variable["name"].as_str().unwrap());
        out.push((place, variable_query_expr(query).to_owned()));
    }
    out
}

/// The PromQL inside a Grafana variable query: `label_values(EXPR, label)`
/// queries EXPR (`label_values(label)` queries no metric),
/// `query_result(EXPR)` EXPR.
fn variable_query_expr(query: &str) -> &str {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return match args.rsplit_once(',') {
            Some((expr, _label)) => expr.trim(),
            None => "",
        };
    }
    query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or(query)
}

/// PromQL words that are never metric names (PromQL reads them in any case):
/// aggregations, keywords, number literals, and the clauses whose
/// parenthesised label lists follow them.
const NOT_METRICS: [&str; 26] = [
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
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
];

/// Clauses followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL query selects: identifiers that are not
/// functions (followed by `(`), keywords or label names, outside strings,
/// label matchers (`{...}`), ranges (`[...]`) and Grafana variables (`$x`).
fn metric_names(query: &str) -> BTreeSet<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c == '$' {
            // ${name} or $name: a Grafana variable.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i, '{', '}');
            } else {
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (5m, 1d, 0.99, 1e3).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            let keyword = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&keyword.as_str()) && call {
                i = skip_group(&chars, next, '(', ')');
            } else if !call && !NOT_METRICS.contains(&keyword.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The label matchers of a set of queries with a plain value (`label="v"`,
/// `label!="v"`, or the alternatives of `label=~"a|b"`), for the
/// [`CHECKED_LABELS`]. Values with Grafana variables or other regex syntax are
/// left out.
fn label_matchers(queries: &[(String, String)]) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (_, query) in queries {
        let chars: Vec<char> = query.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => i = skip_string(&chars, i),
                '{' => {
                    let end = skip_group(&chars, i, '{', '}');
                    let body: String = chars[i + 1..end.saturating_sub(1)].iter().collect();
                    for (label, value) in matchers_of(&body) {
                        if CHECKED_LABELS.contains(&label.as_str()) {
                            found.extend(value.split('|').map(|v| (label.clone(), v.to_owned())));
                        }
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
    found
}

/// `label op "value"` pairs of a selector's body whose value is plain words
/// (alternatives joined by `|` allowed).
fn matchers_of(body: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while let Some(quote) = rest.find('"') {
        let head = rest[..quote].trim_end_matches(['=', '!', '~', ' ']);
        let label = head
            .rsplit([',', ' ', '{'])
            .next()
            .unwrap_or_default()
            .trim();
        let after = &rest[quote + 1..];
        let Some(close) = after.find('"') else { break };
        let value = &after[..close];
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|')
            && !value.is_empty()
        {
            pairs.push((label.to_owned(), value.to_owned()));
        }
        rest = &after[close + 1..];
    }
    pairs
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index after the group opened at `start`, strings and nesting included.
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    chars.len()
}

/// What a `/metrics` scrape exports.
struct Scrape {
    /// Sample names (`name` of `name{labels} value`).
    samples: BTreeSet<String>,
    /// `# TYPE` lines: family name → type.
    families: BTreeMap<String, String>,
    /// Every value each label takes on any sample.
    label_values: BTreeMap<String, BTreeSet<String>>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut scrape = Scrape {
            samples: BTreeSet::new(),
            families: BTreeMap::new(),
            label_values: BTreeMap::new(),
        };
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared.split_once(' ').unwrap();
                scrape.families.insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            scrape.samples.insert(line[..end].to_owned());
            if line[end..].starts_with('{') {
                let close = line.rfind('}').unwrap();
                for (label, value) in matchers_of_all(&line[end + 1..close]) {
                    scrape.label_values.entry(label).or_default().insert(value);
                }
            }
        }
        scrape
    }

    /// The declared family a sample name belongs to, with its type, when the
    /// name is the family's or the family's plus a suffix of its samples.
    fn family_of(&self, name: &str) -> Option<(&str, &str)> {
        [
            "", "_total", "_bucket", "_sum", "_count", "_created", "_info",
        ]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find_map(|family| {
            self.families
                .get_key_value(family)
                .map(|(f, k)| (f.as_str(), k.as_str()))
        })
    }
}

/// Every `label="value"` pair of an exposition line's label set.
fn matchers_of_all(body: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while let Some((label, after)) = rest.split_once("=\"") {
        let label = label.trim_start_matches(',').trim();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        pairs.push((label.to_owned(), value));
        rest = &after[end..];
    }
    pairs
}

// The extraction itself, on fixed input: it must find what a query uses and
// nothing else, or the test above could pass by finding nothing.

const SAMPLE_SCRAPE: &str = "\
# HELP agentd_tool_calls Tool calls.
# TYPE agentd_tool_calls counter
agentd_tool_calls_total{gen_ai_tool_name=\"current_time\",outcome=\"ok\"} 1
# TYPE agentd_answers counter
agentd_answers_total{grounded=\"true\",cited=\"false\"} 2
# TYPE agentd_session_write_seconds histogram
# TYPE grpc_server_handled counter
grpc_server_handled_total{grpc_service=\"agentd.v1.AgentService\",grpc_method=\"Chat\",grpc_code=\"OK\"} 3
# EOF
";

#[test]
fn metric_names_are_the_selected_series_only() {
    let query = r#"
        sum by (namespace, job, le) (rate(agentd_time_to_first_token_seconds_bucket{job="x", le=~"1|2"}[1h] offset 1d))
          > 1.5 * on (namespace) group_left (pod) max_over_time(ns:recorded:rate1h[7d:5m])
        and absent(up{job="a b"}) or count without (instance) (agentd_build_info{version!~"$v"}) > bool 2
        unless sum(rate(grpc_server_handled_total{grpc_code=~"Internal|Unknown"}[$__rate_interval])) / ${x}
    "#;
    let names: Vec<String> = metric_names(query).into_iter().collect();
    assert_eq!(
        names,
        [
            "agentd_build_info",
            "agentd_time_to_first_token_seconds_bucket",
            "grpc_server_handled_total",
            "ns:recorded:rate1h",
            "up",
        ]
    );
}

#[test]
fn rule_exprs_reads_block_and_inline_values() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - record: a:b:c\n        expr: |\n          sum(\n            x_total\n          )\n        labels:\n          severity: info\n      - alert: A\n        expr: \"y > 1\"\n      - alert: B\n        expr: z == 0\n        for: 5m\n";
    assert_eq!(rule_exprs(yaml), ["sum(\nx_total\n)", "y > 1", "z == 0"]);
    assert_eq!(recorded_names(yaml), BTreeSet::from(["a:b:c".to_owned()]));
    // The real file: every rule has an expression, and no expression swallowed
    // the next rule's keys.
    let exprs = rule_exprs(ALERTS);
    assert_eq!(exprs.len(), ALERTS.matches("expr:").count());
    assert!(
        exprs
            .iter()
            .all(|e| !e.is_empty() && !e.contains("labels:"))
    );
}

#[test]
fn a_renamed_metric_or_label_value_in_the_rules_is_reported() {
    let scrape = Scrape::parse(SAMPLE_SCRAPE);
    let used = |query: &str| -> BTreeMap<String, String> {
        metric_names(query)
            .into_iter()
            .map(|name| (name, "test".to_owned()))
            .collect()
    };
    let none = BTreeSet::new();
    assert!(unknown_names(&used("rate(agentd_tool_calls_total[5m])"), &scrape, &none).is_empty());
    // A renamed counter: reported as missing.
    let renamed = unknown_names(&used("rate(agentd_tool_call_total[5m])"), &scrape, &none);
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert!(renamed[0].contains("not in the scrape"), "{renamed:?}");
    // A counter's family name without `_total` is no series Prometheus stores.
    let family = unknown_names(&used("rate(agentd_answers[5m])"), &scrape, &none);
    assert!(
        family[0].contains("# TYPE agentd_answers counter"),
        "{family:?}"
    );
    // A histogram declared but never observed in the scenario.
    let unobserved = unknown_names(&used("agentd_session_write_seconds_bucket"), &scrape, &none);
    assert!(unobserved[0].contains("no sample"), "{unobserved:?}");
    // Recorded and external names are exempt.
    let recorded = BTreeSet::from(["ns:x:rate5m".to_owned()]);
    assert!(unknown_names(&used("ns:x:rate5m > 0 or absent(up)"), &scrape, &recorded).is_empty());

    // The same on the real rules file with one metric renamed.
    let broken = ALERTS.replace("agentd_tool_calls_total", "agentd_tool_call_total");
    let broken: BTreeMap<String, String> = rule_exprs(&broken)
        .iter()
        .flat_map(|e| metric_names(e))
        .map(|name| (name, "alerts.yaml".to_owned()))
        .collect();
    let problems = unknown_names(&broken, &scrape, &recorded_names(ALERTS));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("agentd_tool_call_total ")),
        "{problems:?}"
    );

    // Label values: a code name spelled the wrong way, an unknown outcome.
    let queries = [(
        "test".to_owned(),
        r#"x{grpc_code=~"Internal|INTERNAL", outcome!="ok", cited="maybe", job=~"$job"}"#
            .to_owned(),
    )];
    let matchers = label_matchers(&queries);
    assert_eq!(
        unknown_label_values(&matchers, &scrape),
        ["cited=\"maybe\"", "grpc_code=\"INTERNAL\""]
    );
}

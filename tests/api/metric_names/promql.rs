//! The PromQL queries of the chart's rules file and dashboard, read as text,
//! and what they select: metric names and label matchers. There is no YAML
//! crate among the dependencies, so the rules file is read textually: its
//! `expr:` and `record:` keys, which is all the test needs.

use std::collections::BTreeSet;

/// A label matcher of a selector: the metric it selects ("" when the selector
/// names none), the label, and one plain value it matches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Matcher {
    pub metric: String,
    pub label: String,
    pub value: String,
}

/// The `expr:` values of a Prometheus rules file: inline, quoted, or a block
/// scalar (`expr: |` and the lines indented below it).
pub fn rule_exprs(yaml: &str) -> Vec<String> {
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
pub fn recorded_names(yaml: &str) -> BTreeSet<String> {
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
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
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
pub fn metric_names(query: &str) -> BTreeSet<String> {
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

/// The label matchers on `labels` of a set of queries with a plain value
/// (`label="v"`, `label!="v"`, or the alternatives of `label=~"a|b"`), each
/// with the metric its selector names. Values with Grafana variables or other
/// regex syntax are left out.
pub fn label_matchers(queries: &[(String, String)], labels: &[&str]) -> BTreeSet<Matcher> {
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
                    // The metric: the word before the brace (spaces allowed).
                    let mut word_end = i;
                    while word_end > 0 && chars[word_end - 1].is_whitespace() {
                        word_end -= 1;
                    }
                    let mut word_start = word_end;
                    while word_start > 0 && is_word(chars[word_start - 1]) {
                        word_start -= 1;
                    }
                    let metric: String = chars[word_start..word_end].iter().collect();
                    for (label, value) in plain_matchers(&body) {
                        if labels.contains(&label.as_str()) {
                            found.extend(value.split('|').map(|v| Matcher {
                                metric: metric.clone(),
                                label: label.clone(),
                                value: v.to_owned(),
                            }));
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
fn plain_matchers(body: &str) -> Vec<(String, String)> {
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

// The extraction itself, on fixed input: it must find what a query uses and
// nothing else, or the test of the real files could pass by finding nothing.

#[test]
fn metric_names_are_the_selected_series_only() {
    let query = r#"
        sum by (namespace, job, le) (rate(agentd_time_to_first_token_seconds_bucket{job="x", le=~"1|2"}[1h] offset 1d))
          > 1.5 * on (namespace) group_left (pod) quantile_over_time(0.5, ns:recorded:rate1h[7d:5m])
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
fn label_matchers_name_the_metric_of_their_selector() {
    let queries = [(
        "test".to_owned(),
        r#"rate(a_total{outcome=~"full|error", job=~"$job"}[5m]) / b_count {outcome!="ok"} + {outcome="x"}"#
            .to_owned(),
    )];
    let found: Vec<(String, String, String)> = label_matchers(&queries, &["outcome"])
        .into_iter()
        .map(|m| (m.metric, m.label, m.value))
        .collect();
    let triple = |m: &str, v: &str| (m.to_owned(), "outcome".to_owned(), v.to_owned());
    assert_eq!(
        found,
        [
            triple("", "x"),
            triple("a_total", "error"),
            triple("a_total", "full"),
            triple("b_count", "ok"),
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
    let exprs = rule_exprs(super::ALERTS);
    assert_eq!(exprs.len(), super::ALERTS.matches("expr:").count());
    assert!(
        exprs
            .iter()
            .all(|e| !e.is_empty() && !e.contains("labels:"))
    );
}

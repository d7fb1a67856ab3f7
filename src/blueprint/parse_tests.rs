//! Tests of `parse.rs`.

use super::*;
use crate::blueprint::model::{MemorySize, ServiceType};
use std::time::Duration;

/// Parses `text` as `t.yaml` and returns its errors, one display line each.
fn errors(text: &str) -> Vec<String> {
    match parse_blueprint("t.yaml", text) {
        Ok(bp) => panic!("expected errors, got {bp:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn ok(text: &str) -> Blueprint {
    parse_blueprint("t.yaml", text).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

const GOOD: &str = "\
name: shop
services:
  - id: web
    type: cluster
    initial_size: 3
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: { cpus: 0.25, memory: 64Mi }
      health: { http: { port: 8080, path: /health }, interval: 2s }
    policies:
      - use: web-autoscaler
        upper: 200
  - id: db
    type: container
    image: drover/workload:latest
    ports: [6379]
    health:
      tcp: { port: 6379 }
";

#[test]
fn a_good_blueprint_parses() {
    let bp = ok(GOOD);
    assert_eq!(bp.name, "shop");
    assert_eq!(bp.location, "local");
    assert_eq!(bp.services.len(), 2);
    let web = &bp.services[0];
    assert_eq!(web.kind, ServiceType::Cluster);
    assert_eq!(web.initial_size, Some(3));
    let member = web.member.as_ref().unwrap();
    assert_eq!(member.kind, "container");
    assert_eq!(member.resources.memory, Some(MemorySize(64 << 20)));
    let health = member.health.as_ref().unwrap();
    assert_eq!(health.interval, Duration::from_secs(2));
    assert_eq!(health.timeout, Duration::from_secs(1));
    assert_eq!(health.http.as_ref().unwrap().path, "/health");
    assert_eq!(web.policies[0].preset.as_deref(), Some("web-autoscaler"));
    assert_eq!(web.policies[0].config["upper"], Value::from(200));
    assert_eq!(bp.services[1].kind, ServiceType::Container);
}

#[test]
fn syntax_error_stops_with_its_position() {
    let text = "name: shop\nservices: [\n  { id: web\n";
    let e = parse_blueprint("t.yaml", text).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e.0[0],
        BlueprintError {
            file: "t.yaml".into(),
            line: Some(4),
            column: Some(1),
            path: String::new(),
            error: "did not find expected ',' or '}', while parsing a flow mapping \
                        at line 3 column 3"
                .into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "t.yaml:4:1: did not find expected ',' or '}', while parsing a flow mapping \
             at line 3 column 3"
    );
}

#[test]
fn syntax_error_in_block_yaml() {
    let text = "name: shop\nservices:\n  - id: web\n    type: cluster: 3\n";
    assert_eq!(
        errors(text),
        ["t.yaml:4:18: mapping values are not allowed in this context"]
    );
    // A tab used for indentation.
    assert_eq!(
        errors("name: shop\nservices:\n\t- id: web\n"),
        ["t.yaml:3:1: found character that cannot start any token, \
              while scanning for the next token"]
    );
}

#[test]
fn unknown_key_in_member_points_at_the_key() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      imgae: drover/workload:latest
";
    let e = parse_blueprint("t.yaml", text).unwrap_err();
    assert_eq!(e.len(), 1, "{e}");
    let err = &e.0[0];
    assert_eq!((err.line, err.column), (Some(6), Some(7)));
    assert_eq!(err.path, "services[0].member.imgae");
    // The list of fields grows with the model: check its start only.
    assert!(
            err.error.starts_with(
                "unknown field `imgae`, expected one of `type`, `image`, `image_pull`, `command`, `env`, \
                 `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            err.error
        );
}

#[test]
fn unknown_top_level_key() {
    let text = "name: shop\nservices: []\nlocaton: local\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        "t.yaml:2:11: services: an application needs at least one service"
    );
    assert!(
        errs[1].starts_with(
            "t.yaml:3:1: locaton: unknown field `locaton`, expected one of `name`, \
                 `location`, `services`"
        ),
        "{}",
        errs[1]
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    initial_size: three
    member: { image: drover/workload:latest }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:5:19: services[0].initial_size: invalid type: string \"three\", \
              expected a whole number"
        ]
    );
}

#[test]
fn missing_image() {
    let text = "\
name: shop
services:
  - id: one
    type: container
    ports: [80]
  - id: two
    type: cluster
    member:
      ports: [80]
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:5: services[0]: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
            "t.yaml:9:7: services[1].member: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
        ]
    );
}

#[test]
fn duplicate_id_points_at_the_second() {
    let text = "\
name: shop
services:
  - { id: web, type: container, image: a }
  - id: db
    type: container
    image: b
  - id: web
    type: container
    image: c
";
    assert_eq!(
        errors(text),
        ["t.yaml:7:9: services[2].id: duplicate service id `web`: services[0] already has it"]
    );
}

#[test]
fn errors_in_two_services_are_reported_together() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      image: drover/workload:latest
      prots: [8080]
  - id: db
    type: container
    image: redis
    ports: [6379]
    resources:
      memory: lots
";
    let e = parse_blueprint("t.yaml", text).unwrap_err();
    let lines: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(
            lines[0].starts_with(
                "t.yaml:7:7: services[0].member.prots: unknown field `prots`, expected one of \
                 `type`, `image`, `image_pull`, `command`, `env`, `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            lines[0]
        );
    assert_eq!(
        lines[1],
        "t.yaml:13:15: services[1].resources.memory: memory `lots` must start with a \
             number, such as `128Mi`"
    );
}

#[test]
fn type_errors_and_semantic_errors_of_different_services_together() {
    let text = "\
name: Shop
services:
  - id: web
    type: clustr
  - id: db
    type: container
  - id: web
    type: container
    image: x
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:1:7: name: application name `Shop` is invalid: it must match \
                 ^[a-z][a-z0-9-]{0,39}$ (1 to 40 lower-case letters, digits or `-`, \
                 starting with a letter)",
            "t.yaml:4:11: services[0].type: unknown variant `clustr`, expected \
                 one of `container`, `cluster`, `load-balancer`",
            "t.yaml:5:5: services[1]: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
            "t.yaml:7:9: services[2].id: duplicate service id `web`: services[0] already has it",
        ]
    );
}

#[test]
fn several_errors_in_one_service() {
    let text = "\
name: shop
services:
  - type: cluster
    initial_size: -2
    member:
      image: x
      ports: [8080, http]
      health:
        http: { path: / }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:5: services[0]: missing field `id`",
            "t.yaml:4:19: services[0].initial_size: invalid value: integer `-2`, \
                 expected a whole number",
            "t.yaml:7:21: services[0].member.ports[1]: `http` is not a port: write a port \
                 number (`8080`), `\"HOST:CONTAINER\"` (`\"8000:80\"`) or \
                 `{ container: 80, host: 8000 }`",
            "t.yaml:9:15: services[0].member.health.http: missing field `port`",
        ]
    );
}

#[test]
fn missing_required_fields_are_all_reported() {
    assert_eq!(
        errors("location: local\nservices:\n  - image: x\n"),
        [
            "t.yaml:1:1: missing field `name`",
            "t.yaml:3:5: services[0]: missing field `id`",
            "t.yaml:3:5: services[0]: missing field `type`",
        ]
    );
    assert_eq!(
        errors("name: shop\n"),
        ["t.yaml:1:1: missing field `services`"]
    );
}

#[test]
fn bad_memory_unit() {
    let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    resources: { cpus: 1, memory: 64MB, }
  - id: db
    type: container
    image: x
    resources: { memory: 64mb }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:10:26: services[1].resources.memory: memory unit `mb` is unknown; \
              use one of Ki, Mi, Gi, K, M, G"
        ]
    );
}

#[test]
fn memory_below_dockers_minimum() {
    let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    resources:
      memory: 4Mi
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:7:15: services[0].resources.memory: memory 4Mi is below Docker's \
              minimum of 6Mi"
        ]
    );
}

#[test]
fn health_port_not_published() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      image: drover/workload:latest
      ports: [8080]
      health:
        http:
          port: 8081
          path: /health
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:10:17: services[0].member.health.http.port: health check port 8081 is \
              not in `ports`: health checks go through the published port, so add 8081 to \
              `ports`"
        ]
    );
}

#[test]
fn cluster_fields_at_the_wrong_level_point_at_the_key() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    image: drover/workload:latest
    member: { image: drover/workload:latest }
";
    assert_eq!(
        errors(text),
        ["t.yaml:5:5: services[0].image: `image` belongs under `member` for a cluster"]
    );
}

#[test]
fn json_input() {
    let good = r#"{"name": "shop", "services": [
            {"id": "web", "type": "container", "image": "drover/workload:latest",
             "ports": [8080], "health": {"tcp": {"port": 8080}, "interval": "500ms"}}]}"#;
    let bp = ok(good);
    assert_eq!(bp.services[0].ports, [8080]);
    assert_eq!(
        bp.services[0].health.as_ref().unwrap().interval,
        Duration::from_millis(500)
    );

    let bad = "{\n  \"name\": \"shop\",\n  \"services\": [\n    {\"id\": \"web\", \
                   \"type\": \"container\", \"image\": \"x\", \"ports\": [\"8o\"]},\n    \
                   {\"id\": \"db\", \"type\": \"container\", \"imgae\": \"x\"}\n  ]\n}\n";
    let e = parse_blueprint("<request>", bad).unwrap_err();
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.line, e.column, e.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(4), Some(64), "services[0].ports[0]"),
            (Some(5), Some(39), "services[1].imgae"),
        ]
    );
    assert_eq!(
        e.0[0].to_string(),
        "<request>:4:64: services[0].ports[0]: `8o` is not a port: write a port number \
             (`8080`), `\"HOST:CONTAINER\"` (`\"8000:80\"`) or `{ container: 80, host: 8000 }`"
    );
}

#[test]
fn json_with_tabs() {
    let text = "{\n\t\"name\": \"shop\",\n\t\"services\": [\n\t\t{\"id\": \"Web\", \
                    \"type\": \"container\", \"image\": \"x\"}\n\t]\n}\n";
    assert_eq!(
        errors(text),
        [
            "t.yaml:4:10: services[0].id: service id `Web` is invalid: it must match \
              ^[a-z][a-z0-9-]{0,39}$ (1 to 40 lower-case letters, digits or `-`, starting \
              with a letter)"
        ]
    );
}

#[test]
fn empty_and_non_mapping_documents() {
    for text in ["", "\n", "# just a comment\n", "---\n", "~\n"] {
        assert_eq!(
            errors(text),
            ["t.yaml: the blueprint is empty: expected a mapping with `name` and `services`"],
            "{text:?}"
        );
    }
    assert_eq!(
        errors("- name: shop\n"),
        ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a list"]
    );
    assert_eq!(
        errors("shop\n"),
        ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a string"]
    );
}

#[test]
fn services_not_a_list() {
    assert_eq!(
        errors("name: shop\nservices:\n  web:\n    type: container\n"),
        [
            "t.yaml:3:3: services: `services` must be a list of services (`- id: web ...`), \
              got a mapping"
        ]
    );
    // An empty value points at its key.
    assert_eq!(
        errors("name: shop\nservices:\nlocation: local\n"),
        [
            "t.yaml:2:1: services: `services` must be a list of services (`- id: web ...`), \
              got nothing"
        ]
    );
}

#[test]
fn empty_value_points_at_its_key() {
    let text = "name: shop\nservices:\n  - id:\n    type: container\n    image: x\n";
    assert_eq!(
        errors(text),
        ["t.yaml:3:5: services[0].id: invalid type: null, expected a string"]
    );
}

#[test]
fn duplicate_key_is_a_syntax_error_at_the_repeat() {
    let text = "\
name: shop
services:
  - id: web
    type: container
    image: a
    image: b
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:6:5: services[0].image: duplicate key `image`: a key may appear only \
              once in a mapping"
        ]
    );
}

#[test]
fn a_second_document_is_an_error() {
    assert_eq!(
        errors("name: a\nservices: []\n---\nname: b\n"),
        ["t.yaml:3:1: a blueprint file holds one YAML document; a second one starts here"]
    );
}

#[test]
fn non_text_keys() {
    let text = "name: shop\nservices:\n  - id: web\n    type: container\n    image: x\n    \
                    8080: 1\n";
    assert_eq!(
        errors(text),
        ["t.yaml:6:5: services[0].8080: unknown field `8080`: field names are text"]
    );
}

#[test]
fn quoted_keys_in_paths() {
    let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    labels:
      io.drover.app: x
      ok: y
";
    let e = parse_blueprint("t.yaml", text).unwrap_err();
    assert_eq!(e.0[0].path, r#"services[0].labels["io.drover.app"]"#);
    assert_eq!((e.0[0].line, e.0[0].column), (Some(7), Some(7)));
}

#[test]
fn anchors_and_merge_keys() {
    let text = "\
name: shop
services:
  - id: web
    type: cluster
    member: &base
      image: drover/workload:latest
      ports: [8080]
  - id: api
    type: cluster
    member:
      <<: *base
      ports: [9090]
      health: { tcp: { port: 8080 } }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:13:30: services[1].member.health.tcp.port: health check port 8080 is not \
              in `ports`: health checks go through the published port, so add 8080 to `ports`"
        ]
    );
}

#[test]
fn byte_order_mark_and_crlf() {
    let text = "\u{feff}name: shop\r\nservices:\r\n  - id: web\r\n    type: container\r\n    \
                    imgae: x\r\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
            errs[0].starts_with(
                "t.yaml:5:5: services[0].imgae: unknown field `imgae`, expected one of `id`, \
                 `type`, `image`, `image_pull`, `command`, `env`, `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            errs[0]
        );
}

#[test]
fn errors_are_sorted_by_position() {
    // The missing `image` of services[0] is found after the type error of
    // services[1] (validation runs last) but is reported first.
    let text = "\
name: shop
services:
  - id: a
    type: container
  - id: b
    type: container
    image: x
    ports: [x]
";
    let e = parse_blueprint("t.yaml", text).unwrap_err();
    let lines: Vec<_> = e.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [3, 8]);
}

#[test]
fn error_display_leaves_out_missing_parts() {
    let mut e = BlueprintError {
        file: "f.yaml".into(),
        line: Some(3),
        column: Some(7),
        path: "services[0].id".into(),
        error: "bad".into(),
    };
    assert_eq!(e.to_string(), "f.yaml:3:7: services[0].id: bad");
    e.column = None;
    assert_eq!(e.to_string(), "f.yaml:3: services[0].id: bad");
    e.line = None;
    assert_eq!(e.to_string(), "f.yaml: services[0].id: bad");
    e.path = String::new();
    assert_eq!(e.to_string(), "f.yaml: bad");
    let all = BlueprintErrors(vec![e.clone(), e]);
    assert_eq!(all.to_string(), "f.yaml: bad\nf.yaml: bad");
}

#[test]
fn errors_serialize_for_the_rest_api() {
    let e = parse_blueprint("<request>", "name: shop\nservices: 3\n").unwrap_err();
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!([{
            "file": "<request>",
            "line": 2,
            "column": 11,
            "path": "services",
            "error": "`services` must be a list of services (`- id: web ...`), got a number",
        }])
    );
    let back: Vec<BlueprintError> =
        serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
    assert_eq!(back, e.0);
}

#[test]
fn position_index_columns_count_characters() {
    let index = PositionIndex::build("é: ü\nliste:\n  - { a: 1 }\n");
    let root = FieldPath::root();
    assert_eq!(index.values[&root.key("é")], Pos { line: 1, column: 4 });
    assert_eq!(index.keys[&root.key("liste")], Pos { line: 2, column: 1 });
    assert_eq!(index.values[&root.key("liste")], Pos { line: 3, column: 3 });
    assert_eq!(
        index.values[&root.key("liste").index(0)],
        Pos { line: 3, column: 5 }
    );
    assert_eq!(
        index.values[&root.key("liste").index(0).key("a")],
        Pos {
            line: 3,
            column: 10
        }
    );
}

/// Duplicates are found on the event stream, as YAML compares keys,
/// whatever the YAML library would say of them.
#[test]
fn duplicate_keys_are_found_structurally() {
    let dups = |text: &str| -> Vec<(String, String, Pos)> {
        PositionIndex::build(text)
            .duplicates
            .into_iter()
            .map(|(p, k, pos)| (p.to_string(), k, pos))
            .collect()
    };
    let at = |line, column| Pos { line, column };
    assert_eq!(
        dups("a: 1\nb:\n  x: 1\n  x: 2\na: 3\n"),
        [
            ("b.x".to_string(), "x".to_string(), at(4, 3)),
            ("a".to_string(), "a".to_string(), at(5, 1)),
        ]
    );
    // Flow mappings, and inside lists.
    assert_eq!(
        dups("s:\n  - {id: a, id: b}\n"),
        [("s[0].id".to_string(), "id".to_string(), at(2, 13))]
    );
    // Quoting does not make another key of text...
    assert_eq!(dups("a: 1\n\"a\": 2\n").len(), 1);
    assert_eq!(dups("a: 1\n'a': 2\n").len(), 1);
    // ...but a number or null is not text.
    assert!(dups("1: a\n\"1\": b\n").is_empty());
    assert!(dups("~: a\n\"~\": b\n").is_empty());
    assert!(dups("true: a\n\"true\": b\n").is_empty());
    assert_eq!(dups("1: a\n1: b\n").len(), 1);
    // The same key in two mappings is no repeat.
    assert!(dups("- a: 1\n- a: 2\n").is_empty());
    // Only the first document is a blueprint.
    assert!(dups("a: 1\n---\na: 1\na: 2\n").is_empty());
}

#[test]
fn the_first_duplicate_wins_over_everything_after_it() {
    // A later syntax error, a later duplicate, a second document.
    let text = "name: a\nname: b\nservices: [\nx: 1\nx: 2\n---\n";
    assert_eq!(
        errors(text),
        ["t.yaml:2:1: name: duplicate key `name`: a key may appear only once in a mapping"]
    );
    // A syntax error before it stops the reading there.
    let text = "name: [\n}\nname: b\n";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(!e[0].contains("duplicate"), "{e:?}");
}

#[test]
fn documents_are_counted_on_the_event_stream() {
    let docs = |text: &str| PositionIndex::build(text).documents.len();
    assert_eq!(docs(""), 0);
    assert_eq!(docs("a: 1\n"), 1);
    assert_eq!(docs("---\na: 1\n"), 1);
    assert_eq!(docs("a: 1\n...\n"), 1);
    assert_eq!(docs("a: 1\n---\n"), 2);
    assert_eq!(docs("a: 1\n---\nb: 2\n---\nc: 3\n"), 3);
    // An empty second document is a second document too, and it is
    // reported even when the first one has type errors.
    assert_eq!(
        errors("name: 7\nservices: 3\n---\n"),
        ["t.yaml:3:1: a blueprint file holds one YAML document; a second one starts here"]
    );
}

#[test]
fn key_values_follow_yaml_resolution() {
    use yaml_rust2::scanner::TScalarStyle::*;
    assert_eq!(key_value("web", Plain), Value::from("web"));
    assert_eq!(key_value("web-1_x", Plain), Value::from("web-1_x"));
    assert_eq!(key_value("1", SingleQuoted), Value::from("1"));
    assert_eq!(key_value("null", DoubleQuoted), Value::from("null"));
    assert_eq!(key_value("8080", Plain), Value::from(8080));
    assert_eq!(key_value("~", Plain), Value::Null);
    assert_eq!(key_value("NULL", Plain), Value::Null);
    assert_eq!(key_value("True", Plain), Value::Bool(true));
    assert_eq!(key_value("a b", Plain), Value::from("a b"));
}

#[test]
fn flow_depth_before_a_bracket() {
    let deep = format!("k: {}", "[".repeat(MAX_NESTING + 1));
    let last = 3 + MAX_NESTING;
    assert!(opens_flow_too_deep(&deep, last));
    assert!(
        !opens_flow_too_deep(&deep, last - 1),
        "the 64th level is allowed"
    );
    // Not at a bracket: not the nesting limit.
    let text = format!("{}x", "[".repeat(100));
    assert!(!opens_flow_too_deep(&text, 100));
    // Out of range.
    assert!(!opens_flow_too_deep("[", 5));
    // Brackets in quotes and comments do not nest.
    let quoted = format!(
        "k: '{}''' # {}\nv: \"\\\"{}\" [",
        "[".repeat(70),
        "{".repeat(70),
        "[".repeat(70)
    );
    let at = quoted.chars().count() - 1;
    assert!(!opens_flow_too_deep(&quoted, at));
    // Closed collections do not count.
    let closed = format!("{}{}[", "[]".repeat(100), "[".repeat(10));
    assert!(!opens_flow_too_deep(&closed, 210));
}

#[test]
fn deep_nesting_is_cheap_and_reported() {
    let deep = format!(
        "name: shop\nservices: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        errors(&deep),
        ["t.yaml:2:266: lists and mappings are nested too deeply (at most 64 levels)"]
    );
    let deep: String = (0..100_000)
        .map(|i| format!("{}k:\n", " ".repeat(i % 4096)))
        .collect();
    assert_eq!(
        errors(&deep),
        ["t.yaml:65:65: lists and mappings are nested too deeply (at most 64 levels)"]
    );
    // 64 levels are fine (and then not a blueprint).
    let ok_depth = format!("{}{}\n", "[".repeat(64), "]".repeat(64));
    assert_eq!(
        errors(&ok_depth),
        ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a list"]
    );
}

#[test]
fn tidy_rewords_serde_types() {
    assert_eq!(
        tidy("invalid type: map, expected struct PolicySpec"),
        "invalid type: mapping, expected a mapping"
    );
    assert_eq!(
        tidy("invalid type: sequence, expected a map"),
        "invalid type: list, expected a mapping"
    );
    assert_eq!(
        tidy("invalid type: unit value, expected f64"),
        "invalid type: null, expected a number"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn check_positions(text: &str) {
        // YAML also breaks lines at CR, NEL, LS and PS; the end of the
        // input may be reported on the line after the last one.
        let breaks = text
            .replace("\r\n", "\n")
            .chars()
            .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
            .count();
        let lines = breaks + 2;
        if let Err(e) = parse_blueprint("p.yaml", text) {
            assert!(!e.is_empty());
            for err in &e {
                if let Some(line) = err.line {
                    assert!(line >= 1 && line <= lines, "{err} in {text:?}");
                }
                assert!(err.column.is_none_or(|c| c >= 1), "{err}");
            }
            let mut sorted = e.0.clone();
            sorted.sort_by_key(|e| (e.line, e.column));
            assert_eq!(sorted, e.0);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            check_positions(&text);
        }

        #[test]
        fn yaml_like_text_never_panics(
            text in "([ -]{0,4}(name|services|id|type|image|member|ports|health|[a-z]{1,5})(: ?)?([\\[\\]{},:0-9a-z ]{0,10})\n){0,12}"
        ) {
            check_positions(&text);
        }

        #[test]
        fn damaged_blueprints_never_panic(cut in 0usize..GOOD.len(), len in 0usize..20, insert in "[\\[\\]{}:, a-z0-9\n-]{0,5}") {
            let mut text = GOOD.to_string();
            let end = (cut + len).min(text.len());
            text.replace_range(cut..end, &insert);
            check_positions(&text);
        }
    }
}

//! The plan's decisions, one per kind of change.

use super::*;

fn bp(yaml: &str) -> Blueprint {
    serde_yaml::from_str(yaml).expect("test blueprint parses")
}

const BASE: &str = r#"
name: shop
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      env: { VERSION: "1" }
    policies:
      - type: autoscaler
        metric: cpu.usage
        upper: 80
  - id: lb
    type: load-balancer
    target: web
    port: 0
  - id: db
    type: container
    image: drover/workload:latest
    env: { ROLE: db }
"#;

fn kind_of(p: &PolicySpec) -> String {
    p.kind.clone().unwrap_or_else(|| match p.preset.as_deref() {
        Some("web-autoscaler") => "autoscaler".into(),
        Some(other) => other.into(),
        None => String::new(),
    })
}

fn run(old: &str, new: &str) -> Plan {
    plan(Some(&bp(old)), &bp(new), &[], &kind_of).expect("plan")
}

fn action(p: &Plan, id: &str) -> PlanAction {
    p.services.iter().find(|s| s.id == id).expect(id).action
}

fn paths(p: &Plan, id: &str) -> Vec<String> {
    p.services
        .iter()
        .find(|s| s.id == id)
        .expect(id)
        .changes
        .iter()
        .map(|c| c.path.clone())
        .collect()
}

#[test]
fn the_same_blueprint_is_a_noop() {
    let p = run(BASE, BASE);
    assert!(p.noop);
    assert!(!p.create);
    assert!(p.services.iter().all(|s| s.action == PlanAction::Kept));
    assert_eq!(p.services.len(), 3);
}

#[test]
fn no_application_yet_adds_every_service() {
    let p = plan(None, &bp(BASE), &[], &kind_of).unwrap();
    assert!(p.create && !p.noop);
    assert!(p.services.iter().all(|s| s.action == PlanAction::Added));
}

#[test]
fn a_reconfigured_policy_is_in_place() {
    let p = run(BASE, &BASE.replace("upper: 80", "upper: 90"));
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    assert_eq!(paths(&p, "web"), vec!["policies.autoscaler"]);
    assert_eq!(action(&p, "lb"), PlanAction::Kept);
    assert_eq!(action(&p, "db"), PlanAction::Kept);
    assert!(!p.noop);
}

#[test]
fn added_and_removed_policies_are_in_place() {
    let added = BASE.replace(
        "        upper: 80\n",
        "        upper: 80\n      - type: replacer\n",
    );
    let p = run(BASE, &added);
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    assert_eq!(paths(&p, "web"), vec!["policies.replacer"]);
    let c = &p.services[0].changes[0];
    assert!(c.from.is_null() && !c.to.is_null());
    let p = run(&added, BASE);
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    assert!(p.services[0].changes[0].to.is_null());
}

#[test]
fn a_restarter_added_to_a_cluster_replaces_it_but_not_on_a_container() {
    let on_cluster = BASE.replace(
        "        upper: 80\n",
        "        upper: 80\n      - type: restarter\n",
    );
    let p = run(BASE, &on_cluster);
    assert_eq!(action(&p, "web"), PlanAction::Replaced);
    assert!(p.services[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("restarter"));
    let on_container = format!("{BASE}    policies:\n      - type: restarter\n");
    let p = run(BASE, &on_container);
    assert_eq!(action(&p, "db"), PlanAction::InPlace);
}

#[test]
fn a_reconfigured_restarter_on_a_cluster_stays_in_place() {
    let a = BASE.replace(
        "        upper: 80\n",
        "        upper: 80\n      - type: restarter\n        max_restarts: 3\n",
    );
    let b = a.replace("max_restarts: 3", "max_restarts: 5");
    assert_eq!(action(&run(&a, &b), "web"), PlanAction::InPlace);
}

#[test]
fn a_preset_policy_is_named_by_its_preset() {
    let a = BASE.replace(
        "      - type: autoscaler\n",
        "      - use: web-autoscaler\n",
    );
    let b = a.replace("upper: 80", "upper: 95");
    assert_eq!(paths(&run(&a, &b), "web"), vec!["policies.web-autoscaler"]);
}

#[test]
fn a_resize_is_in_place() {
    let p = run(BASE, &BASE.replace("initial_size: 2", "initial_size: 4"));
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    let c = &p.services[0].changes[0];
    assert_eq!(c.path, "initial_size");
    assert_eq!((c.from.clone(), c.to.clone()), (2.into(), 4.into()));
}

#[test]
fn no_size_is_the_default_size() {
    let p = run(BASE, &BASE.replace("initial_size: 2", "initial_size: 1"));
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    let p = run(
        &BASE.replace("    initial_size: 2\n", ""),
        &BASE.replace("initial_size: 2", "initial_size: 1"),
    );
    assert_eq!(action(&p, "web"), PlanAction::Kept);
}

#[test]
fn every_member_spec_change_rolls() {
    for (from, to, path) in [
        ("VERSION: \"1\"", "VERSION: \"2\"", "member.env"),
        (
            "image: drover/workload:latest\n      ports",
            "image: drover/workload:v2\n      ports",
            "member.image",
        ),
        ("ports: [8080]", "ports: [8081]", "member.ports"),
        (
            "      ports: [8080]\n",
            "      ports: [8080]\n      command: [workload, --port, \"8080\"]\n",
            "member.command",
        ),
        (
            "      ports: [8080]\n",
            "      ports: [8080]\n      resources: { cpus: 0.5 }\n",
            "member.resources",
        ),
        (
            "      ports: [8080]\n",
            "      ports: [8080]\n      health: { http: { port: 8080 } }\n",
            "member.health",
        ),
        (
            "      ports: [8080]\n",
            "      ports: [8080]\n      volumes: [{ name: data, path: /data }]\n",
            "member.volumes",
        ),
        (
            "      ports: [8080]\n",
            "      ports: [8080]\n      labels: { team: a }\n",
            "member.labels",
        ),
    ] {
        assert!(BASE.contains(from), "{from}");
        let p = run(BASE, &BASE.replacen(from, to, 1));
        assert_eq!(action(&p, "web"), PlanAction::Rolled, "{path}");
        assert_eq!(paths(&p, "web"), vec![path.to_string()], "{path}");
        assert_eq!(action(&p, "db"), PlanAction::Kept, "{path}");
    }
}

#[test]
fn a_roll_and_a_resize_together_roll_and_list_both() {
    let new = BASE
        .replace("initial_size: 2", "initial_size: 3")
        .replace("VERSION: \"1\"", "VERSION: \"2\"");
    let p = run(BASE, &new);
    assert_eq!(action(&p, "web"), PlanAction::Rolled);
    assert_eq!(paths(&p, "web"), vec!["initial_size", "member.env"]);
}

#[test]
fn a_cluster_placement_change_rolls() {
    let new = BASE.replace(
        "    initial_size: 2\n",
        "    initial_size: 2\n    placement: { max_containers: 2 }\n",
    );
    let b = bp(&new);
    let p = plan(Some(&bp(BASE)), &b, &[], &kind_of).unwrap();
    assert_eq!(action(&p, "web"), PlanAction::Rolled);
}

#[test]
fn a_single_container_spec_change_replaces_it() {
    let p = run(BASE, &BASE.replace("ROLE: db", "ROLE: primary"));
    assert_eq!(action(&p, "db"), PlanAction::Replaced);
    assert_eq!(paths(&p, "db"), vec!["env"]);
    assert!(p.services[2].reason.as_deref().unwrap().contains("`env`"));
}

#[test]
fn a_load_balancers_port_replaces_it_and_says_why() {
    let p = run(BASE, &BASE.replace("port: 0", "port: 18000"));
    assert_eq!(action(&p, "lb"), PlanAction::Replaced);
    assert_eq!(paths(&p, "lb"), vec!["port"]);
    let why = p.services[1].reason.as_deref().unwrap();
    assert!(
        why.contains("`port`") && why.contains("listening socket"),
        "{why}"
    );
}

#[test]
fn a_load_balancers_mode_and_limits_change_in_place() {
    let changed = BASE.replace(
        "port: 0\n",
        "port: 0\n    mode: tcp\n    limits: { max_connections: 50 }\n",
    );
    let p = run(BASE, &changed);
    assert_eq!(action(&p, "lb"), PlanAction::InPlace);
    assert_eq!(paths(&p, "lb"), vec!["limits", "mode"]);
    let why = p.services[1].reason.as_deref().unwrap();
    assert!(why.contains("changed in place"), "{why}");
    // With the port too, it is made again.
    let p = run(BASE, &changed.replace("port: 0", "port: 18000"));
    assert_eq!(action(&p, "lb"), PlanAction::Replaced);
}

#[test]
fn start_up_ordering_changes_in_place() {
    let new = BASE.replace(
        "    initial_size: 2\n",
        "    initial_size: 2\n    depends_on: [db]\n",
    );
    let p = run(BASE, &new);
    assert_eq!(action(&p, "web"), PlanAction::InPlace);
    assert_eq!(paths(&p, "web"), vec!["depends_on"]);
}

#[test]
fn a_type_change_replaces_the_service() {
    let new = BASE.replace(
        "  - id: db\n    type: container\n    image: drover/workload:latest\n    env: { ROLE: db }\n",
        "  - id: db\n    type: cluster\n    member:\n      image: drover/workload:latest\n",
    );
    let p = run(BASE, &new);
    assert_eq!(action(&p, "db"), PlanAction::Replaced);
    assert_eq!(paths(&p, "db"), vec!["type"]);
}

#[test]
fn added_and_removed_services() {
    let new = BASE
        .replace(
            "  - id: db\n    type: container\n    image: drover/workload:latest\n    env: { ROLE: db }\n",
            "",
        )
        .replace(
            "services:\n",
            "services:\n  - id: cache\n    type: container\n    image: drover/workload:latest\n",
        );
    let p = run(BASE, &new);
    assert_eq!(action(&p, "cache"), PlanAction::Added);
    assert_eq!(action(&p, "db"), PlanAction::Removed);
    assert_eq!(action(&p, "web"), PlanAction::Kept);
    // New blueprint's order first, then the removed ones.
    let ids: Vec<&str> = p.services.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["cache", "web", "lb", "db"]);
}

#[test]
fn overrides_in_force_are_reset_and_make_it_not_a_noop() {
    let o = PolicyOverrideRef {
        entity: "web".into(),
        policy: "autoscaler".into(),
    };
    let p = plan(
        Some(&bp(BASE)),
        &bp(BASE),
        &[o.clone(), o.clone()],
        &kind_of,
    )
    .unwrap();
    assert!(!p.noop);
    assert_eq!(p.overrides_reset, vec![o]);
    assert!(p.services.iter().all(|s| s.action == PlanAction::Kept));
}

#[test]
fn a_location_or_network_change_is_refused() {
    let moved = BASE.replace("name: shop\n", "name: shop\nlocation: far\n");
    assert!(matches!(
        plan(Some(&bp(BASE)), &bp(&moved), &[], &kind_of),
        Err(PlanError::LocationChanged { .. })
    ));
    let nets = format!("{BASE}networks:\n  - name: back\n");
    let e = plan(Some(&bp(BASE)), &bp(&nets), &[], &kind_of).unwrap_err();
    assert!(e.to_string().contains("[] → [back]"), "{e}");
}

#[test]
fn an_unknown_key_on_a_cluster_is_not_ignored() {
    let new = BASE.replace(
        "  - id: lb\n",
        "    enrichers:\n      - type: aggregate\n        sensor: cpu.usage\n        function: average\n  - id: lb\n",
    );
    let b = bp(&new);
    let p = plan(Some(&bp(BASE)), &b, &[], &kind_of).unwrap();
    assert_eq!(action(&p, "web"), PlanAction::Replaced);
    assert!(p.services[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("enrichers"));
}

#[test]
fn a_cluster_with_named_volumes_says_it_rolls_in_place() {
    let with_volume = |v: &str| {
        BASE.replace(
            "      env: { VERSION: \"1\" }",
            &format!(
                "      env: {{ VERSION: \"{v}\" }}\n      volumes: [{{ name: data, path: /data }}]"
            ),
        )
    };
    let p = plan(
        Some(&bp(&with_volume("1"))),
        &bp(&with_volume("2")),
        &[],
        &kind_of,
    )
    .unwrap();
    let web = p.services.iter().find(|s| s.id == "web").unwrap();
    assert_eq!(web.action, PlanAction::Rolled);
    let why = web.reason.clone().unwrap_or_default();
    assert!(
        why.contains("in place") && why.contains("max_surge"),
        "{why}"
    );
    // Without volumes, the usual surge: no reason given.
    let p = plan(
        Some(&bp(BASE)),
        &bp(&BASE.replace("VERSION: \"1\"", "VERSION: \"2\"")),
        &[],
        &kind_of,
    )
    .unwrap();
    let web = p.services.iter().find(|s| s.id == "web").unwrap();
    assert_eq!(web.reason, None);
}

//! The built-in component hub: ready-made workspaces (`hubRef: jupyterlab`,
//! `trellis run --hub jupyterlab`), as Polyaxon's public hub offers them.
//! Each is an ordinary component file, readable with `trellis hub show`,
//! versioned so a run records which one it used.

/// One built-in component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubComponent {
    pub name: &'static str,
    /// Bumped whenever the file changes; `hubRef: name:version` pins it.
    pub version: &'static str,
    /// What it is, in one line.
    pub summary: &'static str,
    /// The Polyaxonfile.
    pub content: &'static str,
}

/// Every built-in component, by name.
pub const COMPONENTS: &[HubComponent] = &[
    HubComponent {
        name: "jupyterlab",
        version: "1",
        summary: "JupyterLab notebooks",
        content: include_str!("hub/jupyterlab.yaml"),
    },
    HubComponent {
        name: "notebook",
        version: "1",
        summary: "The Jupyter Notebook interface",
        content: include_str!("hub/notebook.yaml"),
    },
    HubComponent {
        name: "vscode",
        version: "1",
        summary: "VS Code in the browser (code-server)",
        content: include_str!("hub/vscode.yaml"),
    },
    HubComponent {
        name: "streamlit",
        version: "1",
        summary: "A Streamlit app",
        content: include_str!("hub/streamlit.yaml"),
    },
    HubComponent {
        name: "tensorboard",
        version: "1",
        summary: "TensorBoard over event files",
        content: include_str!("hub/tensorboard.yaml"),
    },
];

/// The component `reference` names: `name` or `name:version`.
pub fn find(reference: &str) -> Result<&'static HubComponent, String> {
    let (name, version) = match reference.split_once(':') {
        Some((name, version)) => (name, Some(version)),
        None => (reference, None),
    };
    let names = || {
        COMPONENTS
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let component = COMPONENTS.iter().find(|c| c.name == name).ok_or_else(|| {
        let mut message = format!("`{name}` is not a hub component; the hub has {}", names());
        let known: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        if let Some(suggestion) = crate::pql::closest(name, &known) {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        }
        message
    })?;
    match version {
        Some(v) if v != component.version && v != "latest" => Err(format!(
            "the hub has `{name}` at version {}, not {v}",
            component.version
        )),
        _ => Ok(component),
    }
}

/// The operation `trellis run --hub NAME -P k=v` submits.
pub fn operation(reference: &str, params: &[(String, serde_json::Value)]) -> String {
    let mut text = format!("version: 1.1\nkind: operation\nhubRef: {reference}\n");
    if !params.is_empty() {
        text.push_str("params:\n");
        for (name, value) in params {
            // JSON is YAML: the value keeps its type, and quoting is right.
            text.push_str(&format!("  {name}:\n    value: {value}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::{Globals, NoFiles, compile};

    #[test]
    fn every_hub_component_compiles_as_a_service() {
        for component in COMPONENTS {
            let run = compile(
                &operation(component.name, &[]),
                None,
                &NoFiles,
                &BTreeMap::new(),
                &Globals::default(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", component.name));
            assert_eq!(run.kind, crate::run::RunKind::Service, "{}", component.name);
            assert_eq!(run.ports.len(), 1, "{}", component.name);
            // The server's idle timeout applies (`--workspace-idle-secs`).
            assert_eq!(run.culling, None, "{}", component.name);
            assert_eq!(run.component.as_deref(), Some(component.name));
            assert_eq!(run.rewrite_path, component.name == "vscode");
        }
    }

    #[test]
    fn params_fill_the_command_and_late_globals_stay_for_execution() {
        let text = operation(
            "jupyterlab:1",
            &[("python".into(), serde_json::json!("/opt/venv/bin/python"))],
        );
        let run = compile(&text, None, &NoFiles, &BTreeMap::new(), &Globals::default()).unwrap();
        let script = &run.container.as_ref().unwrap().args[0];
        assert!(
            script.contains("exec \"/opt/venv/bin/python\" -m jupyterlab"),
            "{script}"
        );
        assert!(
            script.contains("--ServerApp.base_url={{ globals.base_url }}/"),
            "{script}"
        );
        assert!(script.contains("--port={{ globals.ports[0] }}"), "{script}");
    }

    #[test]
    fn a_run_patch_brings_the_projects_code_to_a_hub_workspace() {
        let text = "version: 1.1\nkind: operation\nhubRef: streamlit\nparams:\n  app: {value: dashboards/app.py}\nrunPatch:\n  init:\n    - git: {url: 'https://example.com/acme/dashboards.git', revision: main}\n";
        let run = compile(text, None, &NoFiles, &BTreeMap::new(), &Globals::default()).unwrap();
        assert_eq!(run.init.len(), 1, "{:?}", run.init);
        let step = format!("{:?}", run.init[0]);
        assert!(
            step.contains("https://example.com/acme/dashboards.git"),
            "{step}"
        );
        assert!(step.contains("main"), "{step}");
        // The component's own run is kept: its command, with the param.
        let script = &run.container.as_ref().unwrap().args[0];
        assert!(
            script.contains("streamlit run \"dashboards/app.py\""),
            "{script}"
        );
        assert_eq!(run.ports, [8501]);

        // A patch for another kind of run, or a strategy without a patch,
        // is refused where it was written.
        let wrong = "version: 1.1\nkind: operation\nhubRef: streamlit\nrunPatch: {kind: job}\n";
        let error =
            compile(wrong, None, &NoFiles, &BTreeMap::new(), &Globals::default()).unwrap_err();
        assert_eq!(error.path, "runPatch.kind", "{error}");
        let lone = "version: 1.1\nkind: operation\nhubRef: streamlit\npatchStrategy: replace\n";
        let error =
            compile(lone, None, &NoFiles, &BTreeMap::new(), &Globals::default()).unwrap_err();
        assert_eq!(error.path, "patchStrategy", "{error}");
    }

    #[test]
    fn unknown_names_and_versions_are_refused_with_what_exists() {
        let error = find("jupyterlb").unwrap_err();
        assert!(error.contains("did you mean `jupyterlab`"), "{error}");
        assert!(error.contains("tensorboard"), "{error}");
        let error = find("jupyterlab:9").unwrap_err();
        assert!(error.contains("at version 1, not 9"), "{error}");
        assert_eq!(find("vscode:latest").unwrap().name, "vscode");
        let error = compile(
            &operation("nope", &[]),
            None,
            &NoFiles,
            &BTreeMap::new(),
            &Globals::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("hubRef"), "{error}");
    }
}

//! The user commands: `projects`, `ops`, `run`, `check`. Each parses its
//! arguments, makes one or two API calls, and prints for people (tables) or
//! scripts (`-o json`: exactly the API's objects, a JSON array for lists).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use trellis_domain::name::DEFAULT_OWNER;
use trellis_domain::spec::{self, Globals, Resolver};

use super::Command;
use super::client::{ApiClient, CliError};
use super::output;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON objects, nothing else on stdout.
    Json,
}

/// Where the server is and how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The Trellis server to talk to.
    #[arg(
        long = "host",
        env = "TRELLIS_HOST",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub host: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// `trellis projects ...`.
#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(subcommand)]
    pub command: ProjectsCommand,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Project commands.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List an owner's projects.
    Ls {
        #[arg(long, default_value = DEFAULT_OWNER)]
        owner: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Create a project.
    Create {
        /// `name` or `owner/name`.
        project: String,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags.
        #[arg(long)]
        tags: Option<String>,
    },
    /// Show a project.
    Get {
        /// `name` or `owner/name`.
        project: String,
    },
    /// Delete a project and all its runs.
    Delete {
        /// `name` or `owner/name`.
        project: String,
    },
}

/// Which project a run command works in.
#[derive(Debug, Clone, Args)]
pub struct ProjectArg {
    /// `name` or `owner/name`.
    #[arg(short = 'p', long = "project", env = "TRELLIS_PROJECT")]
    pub project: String,
}

/// `trellis ops ...`.
#[derive(Debug, Args)]
pub struct OpsArgs {
    #[command(subcommand)]
    pub command: OpsCommand,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Run (operation) commands.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List runs, filtered with the Polyaxon query language.
    Ls {
        #[command(flatten)]
        project: ProjectArg,
        /// Filter, e.g. `status:running|succeeded, name:%sweep%`.
        #[arg(short = 'q', long, allow_hyphen_values = true)]
        query: Option<String>,
        /// Sort, e.g. `-created_at` or `-metrics.loss, name`.
        #[arg(short = 's', long, allow_hyphen_values = true)]
        sort: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show a run.
    Get(RunTarget),
    /// Show a run's status history.
    Statuses(RunTarget),
    /// Print a run's captured output.
    Logs {
        #[command(flatten)]
        target: RunTarget,
        /// Keep printing new lines until the run is done.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Stop a run.
    Stop(RunTarget),
    /// Run a run's spec and params again, as a new run.
    Restart(RunTarget),
    /// Like restart, also taking the run's outputs.
    Copy(RunTarget),
    /// Run a done run again as itself, keeping its history and logs.
    Resume(RunTarget),
    /// Delete a run and its history.
    Delete(RunTarget),
}

/// One run.
#[derive(Debug, Clone, Args)]
pub struct RunTarget {
    #[command(flatten)]
    pub project: ProjectArg,
    /// The run's uuid.
    #[arg(long = "uid", visible_alias = "uuid")]
    pub uid: String,
}

/// `trellis run -f polyaxonfile.yaml` or `trellis run --hub jupyterlab`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Polyaxonfile to submit (YAML or JSON).
    #[arg(
        short = 'f',
        long = "file",
        required_unless_present = "hub",
        conflicts_with = "hub"
    )]
    pub file: Option<PathBuf>,
    /// A built-in component instead of a file: `jupyterlab`, `notebook`,
    /// `vscode`, `streamlit`, `tensorboard` (`trellis hub ls`); its inputs
    /// as `-P name=value`.
    #[arg(long, value_name = "NAME")]
    pub hub: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Comma-separated tags.
    #[arg(long)]
    pub tags: Option<String>,
    /// A param, `name=value` (the value read as YAML); repeatable.
    #[arg(short = 'P', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Follow the run's statuses until it is done; exit non-zero unless it
    /// succeeded.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Stream the run's output live until it is done; exit non-zero unless
    /// it succeeded.
    #[arg(short = 'l', long, conflicts_with = "watch")]
    pub log: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `trellis check -f polyaxonfile.yaml`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Polyaxonfile to check.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// A param, `name=value` (the value read as YAML); repeatable.
    #[arg(short = 'P', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trellis hub ...`.
#[derive(Debug, Args)]
pub struct HubArgs {
    #[command(subcommand)]
    pub command: HubCommand,
}

/// Hub commands; they need no server.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// List the built-in components.
    Ls,
    /// Print a built-in component's Polyaxonfile.
    Show {
        /// `name` or `name:version`.
        name: String,
    },
}

/// Runs a user command; returns the process exit code.
pub async fn dispatch(command: Command) -> i32 {
    let result = match command {
        Command::Projects(args) => projects(args).await,
        Command::Ops(args) => ops(args).await,
        Command::Run(args) => run(args).await,
        Command::Check(args) => check(&args),
        Command::Hub(args) => hub(&args),
        Command::Server(_) | Command::Migrate(_) | Command::Scheduler(_) | Command::Worker(_) => {
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// `owner/name` or `name` (the default owner).
fn split_project(project: &str) -> (&str, &str) {
    project.split_once('/').unwrap_or((DEFAULT_OWNER, project))
}

fn tag_list(tags: Option<&str>) -> Option<Vec<String>> {
    tags.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn print(output: Output, value: &Value, table: impl FnOnce(&Value) -> String) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => print!("{}", table(value)),
    }
}

async fn projects(args: ProjectsArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.client.host)?;
    let out = args.client.output;
    match args.command {
        ProjectsCommand::Ls {
            owner,
            limit,
            offset,
        } => {
            let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
            let page = client
                .get(&format!("/api/v1/{owner}/projects/list"), &query)
                .await?;
            print(out, &page["results"], |results| {
                output::projects_table(results, &page)
            });
        }
        ProjectsCommand::Create {
            project,
            description,
            tags,
        } => {
            let (owner, name) = split_project(&project);
            let body = json!({ "name": name, "description": description, "tags": tag_list(tags.as_deref()) });
            let created = client
                .post(&format!("/api/v1/{owner}/projects/create"), &body)
                .await?;
            print(out, &created, |p| {
                format!(
                    "Created project {}/{}\n",
                    p["owner"].as_str().unwrap_or_default(),
                    p["name"].as_str().unwrap_or_default()
                )
            });
        }
        ProjectsCommand::Get { project } => {
            let (owner, name) = split_project(&project);
            let found = client.get(&format!("/api/v1/{owner}/{name}"), &[]).await?;
            print(out, &found, output::details);
        }
        ProjectsCommand::Delete { project } => {
            let (owner, name) = split_project(&project);
            client.delete(&format!("/api/v1/{owner}/{name}")).await?;
            print(
                out,
                &json!({ "deleted": format!("{owner}/{name}") }),
                |_| format!("Deleted project {owner}/{name}\n"),
            );
        }
    }
    Ok(())
}

/// `ops restart` and `ops copy`: a new run from the target's spec.
async fn clone(
    client: &ApiClient,
    target: &RunTarget,
    verb: &str,
    out: Output,
) -> Result<(), CliError> {
    let created = client
        .post(&run_path(target, &format!("/{verb}")), &json!({}))
        .await?;
    print(out, &created, |r| {
        format!(
            "{} run {} as {}\n",
            if verb == "copy" {
                "Copied"
            } else {
                "Restarted"
            },
            target.uid,
            r["uuid"].as_str().unwrap_or_default()
        )
    });
    Ok(())
}

async fn ops(args: OpsArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.client.host)?;
    let out = args.client.output;
    match args.command {
        OpsCommand::Ls {
            project,
            query,
            sort,
            limit,
            offset,
        } => {
            let (owner, name) = split_project(&project.project);
            let mut params = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
            if let Some(query) = query {
                params.push(("query", query));
            }
            if let Some(sort) = sort {
                params.push(("sort", sort));
            }
            let page = client
                .get(&format!("/api/v1/{owner}/{name}/runs"), &params)
                .await?;
            print(out, &page["results"], |results| {
                output::runs_table(results, &page)
            });
        }
        OpsCommand::Get(target) => {
            let found = client.get(&run_path(&target, ""), &[]).await?;
            print(out, &found, output::details);
        }
        OpsCommand::Statuses(target) => {
            let statuses = client.get(&run_path(&target, "/statuses"), &[]).await?;
            print(out, &statuses, output::statuses_table);
        }
        OpsCommand::Logs { target, follow } => logs(&client, &target, follow, out).await?,
        OpsCommand::Restart(target) => clone(&client, &target, "restart", out).await?,
        OpsCommand::Copy(target) => clone(&client, &target, "copy", out).await?,
        OpsCommand::Resume(target) => {
            let resumed = client
                .post(&run_path(&target, "/resume"), &json!({}))
                .await?;
            print(out, &resumed, |r| {
                format!(
                    "Run {} is {}\n",
                    target.uid,
                    r["status"].as_str().unwrap_or_default()
                )
            });
        }
        OpsCommand::Stop(target) => {
            let stopped = client.post(&run_path(&target, "/stop"), &json!({})).await?;
            print(out, &stopped, |r| {
                format!(
                    "Run {} is {}\n",
                    target.uid,
                    r["status"].as_str().unwrap_or_default()
                )
            });
        }
        OpsCommand::Delete(target) => {
            client.delete(&run_path(&target, "")).await?;
            print(out, &json!({ "deleted": target.uid }), |_| {
                format!("Deleted run {}\n", target.uid)
            });
        }
    }
    Ok(())
}

/// Pages through a run's logs by cursor; with `follow`, streams new lines
/// over the WebSocket until the run is done (polling the REST API if the
/// stream is unavailable or drops, from the same cursor, so no line is lost
/// or repeated). Lines go to stdout as they arrive; with `-o json`, one JSON
/// array of the entries at the end.
async fn logs(
    client: &ApiClient,
    target: &RunTarget,
    follow: bool,
    out: Output,
) -> Result<(), CliError> {
    let path = run_path(target, "/logs");
    let mut after = 0_i64;
    let mut collected = Vec::new();
    let mut emit = |entries: &[Value]| {
        for entry in entries {
            match out {
                Output::Table => println!("{}", entry["text"].as_str().unwrap_or_default()),
                Output::Json => collected.push(entry.clone()),
            }
        }
    };
    let streamed = match (follow, client.stream_url(&path)) {
        (true, Some(url)) => stream_logs(&url, &mut after, &mut emit).await,
        _ => false,
    };
    if !streamed {
        loop {
            let page = client
                .get(
                    &path,
                    &[("after", after.to_string()), ("limit", "1000".to_owned())],
                )
                .await?;
            let entries = page["logs"].as_array().cloned().unwrap_or_default();
            emit(&entries);
            after = page["next_cursor"].as_i64().unwrap_or(after);
            if entries.is_empty() {
                if !follow || page["done"].as_bool().unwrap_or(true) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
    if out == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&collected).unwrap_or_default()
        );
    }
    Ok(())
}

/// Follows the log stream at `url` from `after`, advancing it past every
/// line emitted. `true` once the run is done and every line was emitted;
/// `false` if the stream could not be opened or dropped first.
async fn stream_logs(url: &str, after: &mut i64, emit: &mut impl FnMut(&[Value])) -> bool {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let Ok((mut socket, _)) =
        tokio_tungstenite::connect_async(format!("{url}?cursor={after}")).await
    else {
        return false;
    };
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(page) = serde_json::from_str::<Value>(&text) else {
            return false;
        };
        let entries = page["logs"].as_array().cloned().unwrap_or_default();
        emit(&entries);
        *after = page["next_cursor"].as_i64().unwrap_or(*after);
        if page["done"].as_bool() == Some(true) {
            return true;
        }
    }
    false
}

fn run_path(target: &RunTarget, suffix: &str) -> String {
    let (owner, name) = split_project(&target.project.project);
    format!("/api/v1/{owner}/{name}/runs/{}{suffix}", target.uid)
}

fn read_spec(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Reads `pathRef` files relative to the Polyaxonfile.
struct BesideFile(PathBuf);

impl Resolver for BesideFile {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| format!("cannot read `{path}`: {e}"))
    }
}

/// A Polyaxonfile made self-contained (`pathRef`s inlined), its params,
/// and its compiled form.
fn prepare(
    file: &PathBuf,
    params: &[String],
) -> Result<(String, serde_json::Map<String, Value>, spec::CompiledRun), CliError> {
    let text = read_spec(file)?;
    let name = file.display().to_string();
    prepare_text(
        text,
        name,
        file.parent().map(PathBuf::from).unwrap_or_default(),
        params,
    )
}

/// [`prepare`] for `text`, named `name` in errors, whose `pathRef`s are
/// read beside `dir`.
fn prepare_text(
    text: String,
    name: String,
    dir: PathBuf,
    params: &[String],
) -> Result<(String, serde_json::Map<String, Value>, spec::CompiledRun), CliError> {
    let resolver = BesideFile(dir);
    let with_file = |mut e: spec::SpecError| {
        e.file.get_or_insert(name.clone());
        CliError::Usage(e.to_string())
    };
    // Check the file as written first, so errors point at its lines.
    let mut overrides = std::collections::BTreeMap::new();
    for param in params {
        let (key, value) =
            spec::parse_override(param).map_err(|e| CliError::Usage(format!("-P {param}: {e}")))?;
        overrides.insert(key, value);
    }
    let compiled = spec::compile(
        &text,
        Some(&name),
        &resolver,
        &overrides,
        &Globals::default(),
    )
    .map_err(with_file)?;
    let inlined = spec::inline_path_refs(&text, &resolver).map_err(with_file)?;
    // Keep the text as written when nothing needed inlining.
    let content = if inlined == text || !text.contains("pathRef") {
        text
    } else {
        inlined
    };
    Ok((content, overrides.into_iter().collect(), compiled))
}

fn hub(args: &HubArgs) -> Result<(), CliError> {
    match &args.command {
        HubCommand::Ls => {
            for component in spec::hub::COMPONENTS {
                println!(
                    "{:<12} v{}  {}",
                    component.name, component.version, component.summary
                );
            }
        }
        HubCommand::Show { name } => {
            let component = spec::hub::find(name).map_err(CliError::Usage)?;
            print!("{}", component.content);
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), CliError> {
    let (content, params, _) = match (&args.hub, &args.file) {
        (Some(name), _) => prepare_text(
            spec::hub::operation(name, &[]),
            format!("hub:{name}"),
            PathBuf::new(),
            &args.params,
        )?,
        (None, Some(file)) => prepare(file, &args.params)?,
        (None, None) => {
            return Err(CliError::Usage(
                "give a Polyaxonfile with -f or a built-in component with --hub".into(),
            ));
        }
    };
    let client = ApiClient::new(&args.client.host)?;
    let (owner, name) = split_project(&args.project.project);
    let body = json!({
        "name": args.name,
        "description": args.description,
        "tags": tag_list(args.tags.as_deref()),
        "content": content,
        "params": (!params.is_empty()).then_some(params),
    });
    let created = client
        .post(&format!("/api/v1/{owner}/{name}/runs"), &body)
        .await?;
    let uuid = created["uuid"].as_str().unwrap_or_default().to_owned();
    let run_path = format!("/api/v1/{owner}/{name}/runs/{uuid}");
    let dashboard = format!("{}/{owner}/{name}/runs/{uuid}", client.base());
    if args.log {
        eprintln!("Created run {uuid} in {owner}/{name}\n{dashboard}");
        let target = RunTarget {
            project: args.project.clone(),
            uid: uuid.clone(),
        };
        logs(&client, &target, true, Output::Table).await?;
        let finished = client.get(&run_path, &[]).await?;
        let status = finished["status"].as_str().unwrap_or_default().to_owned();
        eprintln!("Run {uuid} ended {status}");
        return if status == "succeeded" {
            Ok(())
        } else {
            Err(CliError::Usage(format!("the run ended `{status}`")))
        };
    }
    if !args.watch {
        print(args.client.output, &created, |_| {
            format!("Created run {uuid} in {owner}/{name}\n{dashboard}\n")
        });
        return Ok(());
    }
    eprintln!("Created run {uuid} in {owner}/{name}\n{dashboard}");
    let status = watch(&client, &format!("{run_path}/statuses")).await?;
    // With `-o json`, stdout holds exactly one object: the finished run.
    let finished = client.get(&run_path, &[]).await?;
    print(args.client.output, &finished, |_| {
        format!("Run {uuid} ended {status}\n")
    });
    if status == "succeeded" {
        Ok(())
    } else {
        Err(CliError::Usage(format!("the run ended `{status}`")))
    }
}

/// Prints each new status condition (to stderr) until the run is done, and
/// returns the final status.
async fn watch(client: &ApiClient, path: &str) -> Result<String, CliError> {
    let mut seen = 0;
    loop {
        let statuses = client.get(path, &[]).await?;
        let conditions = statuses["status_conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for condition in conditions.iter().skip(seen) {
            eprintln!(
                "{}  {}{}",
                condition["last_transition_time"]
                    .as_str()
                    .unwrap_or_default(),
                condition["type"].as_str().unwrap_or_default(),
                condition["message"]
                    .as_str()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default(),
            );
        }
        seen = conditions.len();
        let status = statuses["status"].as_str().unwrap_or_default().to_owned();
        if status
            .parse::<trellis_domain::lifecycle::RunStatus>()
            .is_ok_and(|s| s.is_done())
        {
            return Ok(status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn check(args: &CheckArgs) -> Result<(), CliError> {
    match prepare(&args.file, &args.params) {
        Ok((_, _, compiled)) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "valid": true, "file": args.file, "compiled": compiled })
                );
            } else {
                println!(
                    "{}: valid {} ({} input{})",
                    args.file.display(),
                    compiled.kind,
                    compiled.inputs.len(),
                    if compiled.inputs.len() == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
        Err(error) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "valid": false, "file": args.file, "error": error.to_string() })
                );
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_default_to_the_default_owner() {
        assert_eq!(split_project("mnist"), ("default", "mnist"));
        assert_eq!(split_project("alice/mnist"), ("alice", "mnist"));
    }

    #[test]
    fn tags_split_on_commas() {
        assert_eq!(
            tag_list(Some("a, b,,c")),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(tag_list(None), None);
    }
}

//! The `init` steps that prepare a run's working directory before its
//! process starts: files written and repositories cloned.

use std::path::PathBuf;

use trellis_domain::logs::{LogLine, Stream};
use trellis_domain::spec::InitStep;

/// Performs the `init` steps in `workdir`, noting each in `log`.
pub(crate) async fn prepare(
    workdir: &std::path::Path,
    steps: &[InitStep],
    log: &mut Vec<LogLine>,
) -> Result<(), String> {
    let mut note = |text: String| {
        log.push(LogLine {
            at: chrono::Utc::now(),
            stream: Stream::Stdout,
            text,
        })
    };
    for step in steps {
        match step {
            InitStep::File {
                filename,
                content,
                chmod,
            } => {
                let path = inside(workdir, filename)?;
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| format!("init: cannot create {}: {e}", parent.display()))?;
                }
                tokio::fs::write(&path, content)
                    .await
                    .map_err(|e| format!("init: cannot write {filename}: {e}"))?;
                if let Some(mode) = chmod {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                        .map_err(|_| format!("init: chmod `{mode}` is not an octal mode"))?;
                    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .await
                        .map_err(|e| format!("init: cannot chmod {filename}: {e}"))?;
                }
                note(format!("init: wrote {filename}"));
            }
            InitStep::Git {
                url,
                revision,
                path,
            } => {
                let name = path.clone().unwrap_or_else(|| repository_name(url));
                let target = inside(workdir, &name)?;
                git(
                    &["clone", "--quiet", url, &target.to_string_lossy()],
                    workdir,
                )
                .await?;
                if let Some(revision) = revision {
                    git(
                        &[
                            "-C",
                            &target.to_string_lossy(),
                            "checkout",
                            "--quiet",
                            revision,
                        ],
                        workdir,
                    )
                    .await?;
                }
                let at = revision
                    .as_deref()
                    .map(|r| format!(" at {r}"))
                    .unwrap_or_default();
                note(format!("init: cloned {url}{at} into {name}"));
            }
            InitStep::Other { what } => {
                return Err(format!(
                    "init: {what} steps are not supported by the local executor"
                ));
            }
        }
    }
    Ok(())
}

/// `relative` under `workdir`, refusing absolute paths and `..`.
fn inside(workdir: &std::path::Path, relative: &str) -> Result<PathBuf, String> {
    let path = std::path::Path::new(relative);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "init: `{relative}` must be a relative path inside the run's directory"
        ));
    }
    Ok(workdir.join(path))
}

/// `https://host/org/repo.git` → `repo`.
fn repository_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repository");
    let name = last.trim_end_matches(".git");
    if name.is_empty() {
        "repository".to_owned()
    } else {
        name.to_owned()
    }
}

async fn git(args: &[&str], workdir: &std::path::Path) -> Result<(), String> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(workdir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| format!("init: cannot run git: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "init: git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

//! The local artifact store: one directory per run under
//! `<data dir>/artifacts/<run uuid>/`.
//!
//! Paths are checked twice: [`ArtifactPath`] refuses `..`, absolute paths
//! and empty segments without IO, and the store refuses to follow a symlink
//! anywhere under a run's directory, so a link planted by a job cannot lead
//! a download or an upload outside it. Uploads stream to a temporary file
//! next to the target and are renamed into place once complete, so a reader
//! never sees half a file and a failed upload leaves nothing behind.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use trellis_domain::tracking::ArtifactPath;
use uuid::Uuid;

use crate::{ServiceError, ServiceResult};

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Relative to the run's root, `/`-separated.
    pub path: String,
    pub is_dir: bool,
    /// Bytes; `None` for directories.
    pub size: Option<u64>,
}

/// Where artifacts are kept.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

fn io_error(context: &str, error: io::Error) -> ServiceError {
    ServiceError::Dependency(format!("artifact store: {context}: {error}"))
}

fn not_found(path: &str) -> ServiceError {
    ServiceError::NotFound {
        entity: "artifact",
        id: path.to_owned(),
    }
}

impl ArtifactStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn run_root(&self, run: Uuid) -> PathBuf {
        self.root.join(run.simple().to_string())
    }

    /// The path of `path` under the run's root, refusing symlinks on the
    /// way (`allow_missing`: components that do not exist yet are fine).
    async fn resolve(&self, run: Uuid, path: Option<&ArtifactPath>) -> ServiceResult<PathBuf> {
        let mut at = self.run_root(run);
        let segments: Vec<&str> = path.map(|p| p.segments().collect()).unwrap_or_default();
        for segment in std::iter::once(None).chain(segments.iter().map(Some)) {
            if let Some(segment) = segment {
                at.push(segment);
            }
            match tokio::fs::symlink_metadata(&at).await {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(ServiceError::invalid(
                        "path",
                        format!(
                            "artifact path `{}` goes through a symbolic link; links are not followed",
                            path.map(ArtifactPath::as_str).unwrap_or("")
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_error("reading a path", e)),
            }
        }
        let mut full = self.run_root(run);
        for segment in segments {
            full.push(segment);
        }
        Ok(full)
    }

    /// Streams `body` into `path` of run `run`, replacing any file there;
    /// returns the bytes written.
    pub async fn put<S, B, E>(
        &self,
        run: Uuid,
        path: &ArtifactPath,
        mut body: S,
    ) -> ServiceResult<u64>
    where
        S: futures_core::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let target = self.resolve(run, Some(path)).await?;
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(ServiceError::invalid(
                "path",
                format!("artifact path `{path}` is a directory"),
            ));
        }
        let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
        match tokio::fs::create_dir_all(&parent).await {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Err(ServiceError::invalid(
                    "path",
                    format!("a parent of artifact path `{path}` is a file"),
                ));
            }
            Err(e) => return Err(io_error("creating a directory", e)),
        }
        let temp = parent.join(format!(".upload-{}", Uuid::new_v4().simple()));
        let result = async {
            let mut file = tokio::fs::File::create(&temp)
                .await
                .map_err(|e| io_error("creating a file", e))?;
            let mut written = 0_u64;
            while let Some(chunk) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)).await
            {
                let chunk = chunk.map_err(|e| {
                    ServiceError::invalid("body", format!("the upload was interrupted: {e}"))
                })?;
                file.write_all(chunk.as_ref())
                    .await
                    .map_err(|e| io_error("writing a file", e))?;
                written += chunk.as_ref().len() as u64;
            }
            // Durable before acknowledged, like every other write.
            file.sync_all()
                .await
                .map_err(|e| io_error("syncing a file", e))?;
            tokio::fs::rename(&temp, &target)
                .await
                .map_err(|e| io_error("moving a file into place", e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result
    }

    /// Opens file `path` of run `run` for streaming, with its size.
    pub async fn open(
        &self,
        run: Uuid,
        path: &ArtifactPath,
    ) -> ServiceResult<(tokio::fs::File, u64)> {
        let target = self.resolve(run, Some(path)).await?;
        let meta = match tokio::fs::metadata(&target).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(path.as_str())),
            Err(e) => return Err(io_error("reading a file", e)),
        };
        if !meta.is_file() {
            return Err(ServiceError::invalid(
                "path",
                format!("artifact path `{path}` is a directory; list it instead"),
            ));
        }
        let file = tokio::fs::File::open(&target)
            .await
            .map_err(|e| io_error("opening a file", e))?;
        Ok((file, meta.len()))
    }

    /// The entries directly under `dir` (the run's root when `None`), by
    /// name. A missing directory lists as empty; a file lists as itself.
    pub async fn list(
        &self,
        run: Uuid,
        dir: Option<&ArtifactPath>,
    ) -> ServiceResult<Vec<ArtifactEntry>> {
        let target = self.resolve(run, dir).await?;
        let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
        let meta = match tokio::fs::metadata(&target).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("reading a directory", e)),
        };
        if meta.is_file() {
            return Ok(vec![ArtifactEntry {
                path: dir.map(ToString::to_string).unwrap_or_default(),
                is_dir: false,
                size: Some(meta.len()),
            }]);
        }
        let mut entries = Vec::new();
        let mut read = tokio::fs::read_dir(&target)
            .await
            .map_err(|e| io_error("reading a directory", e))?;
        while let Some(entry) = read
            .next_entry()
            .await
            .map_err(|e| io_error("reading a directory", e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload-") {
                continue;
            }
            let meta = entry
                .metadata()
                .await
                .map_err(|e| io_error("reading a directory", e))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            entries.push(ArtifactEntry {
                path: format!("{prefix}{name}"),
                is_dir: meta.is_dir(),
                size: meta.is_file().then_some(meta.len()),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Deletes file or directory `path` of run `run` (everything when
    /// `None`). `false` if nothing was there.
    pub async fn delete(&self, run: Uuid, path: Option<&ArtifactPath>) -> ServiceResult<bool> {
        let target = self.resolve(run, path).await?;
        let meta = match tokio::fs::symlink_metadata(&target).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("reading a path", e)),
        };
        let removed = if meta.is_dir() {
            tokio::fs::remove_dir_all(&target).await
        } else {
            tokio::fs::remove_file(&target).await
        };
        removed.map_err(|e| io_error("deleting", e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        data: &'static [u8],
    ) -> impl futures_core::Stream<Item = Result<&'static [u8], String>> + Unpin {
        Chunks(vec![
            Ok(&data[..data.len() / 2]),
            Ok(&data[data.len() / 2..]),
        ])
    }

    struct Chunks(Vec<Result<&'static [u8], String>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<&'static [u8], String>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            let next = if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0))
            };
            std::task::Poll::Ready(next)
        }
    }

    fn path(p: &str) -> ArtifactPath {
        ArtifactPath::parse(p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn files_round_trip_list_and_delete() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = ArtifactStore::new(dir.path());
        let run = Uuid::new_v4();
        let written = store
            .put(run, &path("model/weights.bin"), body(b"0123456789"))
            .await;
        assert_eq!(written.ok(), Some(10));
        let listing = store.list(run, None).await.unwrap_or_default();
        assert_eq!(
            listing,
            vec![ArtifactEntry {
                path: "model".into(),
                is_dir: true,
                size: None
            }]
        );
        let inside = store
            .list(run, Some(&path("model")))
            .await
            .unwrap_or_default();
        assert_eq!(inside[0].path, "model/weights.bin");
        assert_eq!(inside[0].size, Some(10));
        assert!(store.open(run, &path("model/nope")).await.is_err());
        assert!(
            store
                .delete(run, Some(&path("model")))
                .await
                .unwrap_or(false)
        );
        assert!(store.list(run, None).await.unwrap_or_default().is_empty());
    }

    #[tokio::test]
    async fn symlinks_out_of_the_run_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.path().join("secret"), b"s").unwrap_or_else(|e| panic!("{e}"));
        let store = ArtifactStore::new(dir.path());
        let run = Uuid::new_v4();
        let root = dir.path().join(run.simple().to_string());
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), root.join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.open(run, &path("link/secret")).await.is_err());
        assert!(
            store
                .put(run, &path("link/new"), body(b"xx"))
                .await
                .is_err()
        );
        assert!(!outside.path().join("new").exists());
        assert!(store.list(run, Some(&path("link"))).await.is_err());
    }
}

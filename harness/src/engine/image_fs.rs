//! An image's filesystem, read without running it: a created (never started) container whose
//! archive the engine hands out path by path, so images without a shell (`FROM scratch`) work too.
//! Each path's first archive entry is the path itself: its header gives kind, mode and owner, its
//! content streams through a digest and the patterns a promise watches.

use std::collections::BTreeMap;

use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use super::output::Captured;
use super::{Engine, EngineError, EngineKind, HelperSpec, CALL_TIMEOUT};
use crate::suite::Pattern;

/// How long reading one path may take (its content is hashed as it streams).
const READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// One path of an image's filesystem, as the engine's archive of it says.
#[derive(Debug)]
pub struct FileFacts {
    /// `file`, `directory`, `symlink`, …
    pub kind: &'static str,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// User name as the archive records it (often empty: the engine writes ids).
    pub user: String,
    /// Group name, likewise.
    pub group: String,
    /// SHA-256 of a regular file's content, lowercase hex.
    pub sha256: Option<String>,
    /// A regular file's content, cut as output is, with the watched patterns scanned whole.
    pub content: Option<Captured>,
}

/// A created container of an image, for reading its filesystem; removed by [`ImageFs::close`]
/// (and by the run's sweep, as it carries the run's labels).
pub struct ImageFs<'e> {
    engine: &'e Engine,
    image: String,
    id: String,
}

impl Engine {
    /// Creates a never-started container of `image` to read its filesystem.
    pub async fn open_image_fs(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ImageFs<'_>, EngineError> {
        // The command is never run; it only lets images without CMD be created.
        let spec = HelperSpec {
            image: image.to_string(),
            cmd: vec!["/stackcheck-never-run".into()],
            network_mode: Some("none".into()),
            labels: labels.clone(),
            ..Default::default()
        };
        let id = self.create_helper(&spec).await?;
        Ok(ImageFs {
            engine: self,
            image: image.to_string(),
            id,
        })
    }
}

impl ImageFs<'_> {
    /// What is at `path`; `None` if nothing. With `content`, a regular file's bytes are hashed
    /// and scanned for `watching`; with `owner`, the owner is read where this engine tells it
    /// truly.
    pub async fn read(
        &self,
        path: &str,
        content: bool,
        watching: &[Pattern],
        owner: bool,
    ) -> Result<Option<FileFacts>, EngineError> {
        let mut facts = self.read_archive(path, content, watching).await?;
        // Podman 4.3's archive endpoint says the owning user's primary group, and 0:0 for files
        // copied `--chown`; its export of the whole filesystem has the owner the image holds.
        if let Some(f) = facts
            .as_mut()
            .filter(|_| owner && self.engine.kind == EngineKind::Podman)
        {
            if let Some((uid, gid, user, group)) = self.owner_from_export(path).await? {
                (f.uid, f.gid, f.user, f.group) = (uid, gid, user, group);
            }
        }
        Ok(facts)
    }

    /// `path`'s owner as the container's export stream records it (every entry is read past
    /// until it comes: the whole filesystem at worst).
    async fn owner_from_export(
        &self,
        path: &str,
    ) -> Result<Option<(u64, u64, String, String)>, EngineError> {
        let want = path.trim_matches('/');
        let stream = self
            .engine
            .docker
            .export_container(&self.id)
            .map_err(std::io::Error::other);
        let find = async {
            let mut archive = tokio_tar::Archive::new(tokio_util::io::StreamReader::new(stream));
            let mut entries = archive.entries()?;
            while let Some(entry) = entries.next().await {
                let entry = entry?;
                let name = entry.path()?.to_string_lossy().into_owned();
                if name.trim_start_matches("./").trim_matches('/') == want {
                    let h = entry.header();
                    let text =
                        |s: Result<Option<&str>, _>| s.ok().flatten().unwrap_or("").to_string();
                    return Ok(Some((
                        h.uid()?,
                        h.gid()?,
                        text(h.username()),
                        text(h.groupname()),
                    )));
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        match tokio::time::timeout(READ_LIMIT, find).await {
            Err(_) => Err(EngineError::Timeout {
                what: format!("export {} to find {path}", self.image),
                secs: READ_LIMIT.as_secs(),
            }),
            Ok(r) => r.map_err(|e| EngineError::Call {
                what: format!("export {} to find {path}", self.image),
                cause: e.to_string(),
            }),
        }
    }

    async fn read_archive(
        &self,
        path: &str,
        content: bool,
        watching: &[Pattern],
    ) -> Result<Option<FileFacts>, EngineError> {
        let what = format!("read {path} from {}", self.image);
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let stream = self
            .engine
            .docker
            .download_from_container(&self.id, Some(opts))
            .map_err(std::io::Error::other);
        let read = async {
            let mut archive = tokio_tar::Archive::new(tokio_util::io::StreamReader::new(stream));
            let mut entries = archive.entries()?;
            let Some(entry) = entries.next().await else {
                return Ok(None);
            };
            let mut entry = entry?;
            let h = entry.header();
            let kind = h.entry_type();
            let mut facts = FileFacts {
                kind: kind_word(kind),
                mode: h.mode()? & 0o7777,
                uid: h.uid()?,
                gid: h.gid()?,
                user: h.username().ok().flatten().unwrap_or_default().to_string(),
                group: h.groupname().ok().flatten().unwrap_or_default().to_string(),
                sha256: None,
                content: None,
            };
            if content && kind.is_file() {
                let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
                let mut seen = Captured::watching(watching);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = entry.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    digest.update(&buf[..n]);
                    seen.push(&buf[..n]);
                }
                seen.finish();
                let hex: String = digest
                    .finish()
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                facts.sha256 = Some(hex);
                facts.content = Some(seen);
            }
            Ok::<_, std::io::Error>(Some(facts))
        };
        match tokio::time::timeout(READ_LIMIT, read).await {
            Err(_) => Err(EngineError::Timeout {
                what,
                secs: READ_LIMIT.as_secs(),
            }),
            Ok(Ok(facts)) => Ok(facts),
            Ok(Err(e)) => {
                let cause = e.to_string();
                if super::is_absent(&cause) {
                    Ok(None)
                } else {
                    Err(EngineError::Call { what, cause })
                }
            }
        }
    }

    /// Removes the container.
    pub async fn close(self) {
        let _ = tokio::time::timeout(CALL_TIMEOUT, self.engine.remove(&self.id)).await;
    }
}

fn kind_word(kind: tokio_tar::EntryType) -> &'static str {
    if kind.is_file() {
        "a file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symlink"
    } else if kind.is_hard_link() {
        "a hard link"
    } else {
        "a special file"
    }
}

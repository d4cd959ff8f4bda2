//! The report files of a run (`--junit`, `--json`, `--summary`, `--html`): their paths checked
//! before anything starts, and all written at the end.

use std::path::PathBuf;

use super::SuiteReport;

/// Where `run` writes its reports.
#[derive(Debug, Default)]
pub struct Outputs {
    /// `--junit FILE`.
    pub junit: Option<PathBuf>,
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--summary FILE`.
    pub summary: Option<PathBuf>,
    /// `--html FILE`.
    pub html: Option<PathBuf>,
    /// `--logs-dir DIR` (created if missing).
    pub logs_dir: Option<PathBuf>,
}

impl Outputs {
    /// A report path whose folder does not exist is bad input: said before anything starts.
    pub fn check(&self) -> Result<(), String> {
        for (flag, path) in [
            ("--junit", &self.junit),
            ("--json", &self.json),
            ("--summary", &self.summary),
            ("--html", &self.html),
        ] {
            if let Some(path) = path {
                check_file_path(flag, path)?;
            }
        }
        if let Some(dir) = self.logs_dir.as_ref().filter(|d| d.exists() && !d.is_dir()) {
            return Err(format!(
                "--logs-dir {}: expected a folder (it is a file)",
                dir.display()
            ));
        }
        Ok(())
    }

    /// Writes every requested report; false if one could not be written (said on stderr).
    pub fn write(&self, reports: &[SuiteReport], wall_ms: u64) -> bool {
        let mut ok = true;
        let mut write =
            |what: &str,
             path: &Option<PathBuf>,
             w: &dyn Fn(&std::path::Path) -> std::io::Result<()>| {
                if let Some(path) = path {
                    match w(path) {
                        Ok(()) => eprintln!("{what} written to {}", path.display()),
                        Err(e) => {
                            eprintln!("error: cannot write {what} to {}: {e}", path.display());
                            ok = false;
                        }
                    }
                }
            };
        write("JUnit", &self.junit, &|p| super::write_junit(p, reports));
        write("JSON report", &self.json, &|p| {
            super::write_json(p, reports, wall_ms)
        });
        write("summary", &self.summary, &|p| {
            super::write_summary(p, reports)
        });
        write("HTML report", &self.html, &|p| {
            super::write_html(p, reports)
        });
        ok
    }
}

/// A report file's path, given as `flag`: a file (not a folder) in a folder that exists. Said
/// before anything starts.
pub fn check_file_path(flag: &str, path: &std::path::Path) -> Result<(), String> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if parent.is_some_and(|p| !p.is_dir()) || path.is_dir() {
        return Err(format!(
            "{flag} {}: expected a file path in an existing folder",
            path.display()
        ));
    }
    Ok(())
}

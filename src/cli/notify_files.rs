//! `run --policy FILE` with notifications: the Secrets a policy names, read from a folder shaped as Kubernetes
//! mounts them (`--secrets DIR`: DIR/<name>/<key>), and what a policy in a cluster keeps in its status (the
//! pending notices, the users moved to Analyzer) kept in a state file (`--state FILE`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CliError;
use crate::notice::Pending;
use crate::notify::{self, Notifier, SecretEntries};
use crate::policy::{MovedUser, NotifySpec, PendingNotice};
use crate::report::{RecentMove, RunReport};

/// The state file: what `run --policy FILE` keeps between runs, as a policy's status does in a cluster.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct State {
    #[serde(default)]
    notices: Vec<PendingNotice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recent_moves: Vec<MovedUser>,
}

impl State {
    /// The notices earlier runs gave.
    pub(super) fn pending(&self) -> Pending {
        Pending::new(self.notices.iter().filter_map(PendingNotice::to_notice))
    }

    /// The users earlier runs moved to Analyzer.
    pub(super) fn recent_moves(&self) -> Vec<RecentMove> {
        self.recent_moves
            .iter()
            .filter_map(MovedUser::to_recent_move)
            .collect()
    }

    /// What the state holds after `report`'s run: its notices and moves where the run says them, the earlier
    /// ones where it changed nothing. `None` when nothing changed.
    pub(super) fn after(self, report: &RunReport) -> Option<State> {
        if report.notices.is_none() && report.recent_moves.is_none() {
            return None;
        }
        Some(State {
            notices: match &report.notices {
                Some(notices) => notices.iter().map(PendingNotice::from).collect(),
                None => self.notices,
            },
            recent_moves: match &report.recent_moves {
                Some(moves) => moves.iter().map(MovedUser::from).collect(),
                None => self.recent_moves,
            },
        })
    }
}

/// The notifier of a policy, from the folder of Secrets.
pub(super) fn notifier(policy: &str, spec: &NotifySpec, dir: &Path) -> Result<Notifier, CliError> {
    let mut secrets = SecretEntries::new();
    for name in notify::secret_names(spec) {
        secrets.insert(name.clone(), read_folder(dir, &name)?);
    }
    let templates = match notify::template_source(spec) {
        Some(notify::TemplateSource::ConfigMap(name) | notify::TemplateSource::Secret(name)) => {
            notify::template_texts(&read_folder(dir, &name)?)
        }
        None => BTreeMap::new(),
    };
    Notifier::new(policy, spec, &secrets, &templates)
        .map_err(|e| CliError::Invalid(format!("notifications: {e}")))
}

/// DIR/<name>/<key> files as a Secret's entries; dotfiles (a mounted Secret's `..data`) are skipped.
fn read_folder(dir: &Path, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CliError> {
    let folder = dir.join(name);
    let unreadable = |e: std::io::Error| {
        CliError::Invalid(format!(
            "the Secret {name} named by spec.notify: cannot read {}: {e}",
            folder.display()
        ))
    };
    let mut entries = BTreeMap::new();
    for entry in std::fs::read_dir(&folder).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let key = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if key.starts_with('.') || !path.is_file() {
            continue;
        }
        entries.insert(
            key,
            crate::files::read_at_most(&path, crate::files::SECRET_BYTES).map_err(|e| {
                CliError::Invalid(format!(
                    "the Secret {name} named by spec.notify: {}: {e}",
                    path.display()
                ))
            })?,
        );
    }
    Ok(entries)
}

/// The state file; empty when it does not exist yet.
pub(super) fn read_state(path: &Path) -> Result<State, CliError> {
    match crate::files::read_at_most(path, crate::files::REPORT_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Invalid(format!(
                "the state file {} cannot be read as notices and moves: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(CliError::Invalid(format!(
            "cannot read the state file {}: {e}",
            path.display()
        ))),
    }
}

/// Write the state, replacing the file whole (written beside it, then renamed).
pub(super) fn write_state(path: &Path, state: &State) -> Result<(), CliError> {
    let json = serde_json::to_vec_pretty(state).map_err(|e| CliError::Failed(e.to_string()))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, json)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot write the state file {}: {e}; the notices and moves of this run are not kept: warned users \
                 will be warned again, and moved users' Analyzer seats are judged by their own last use",
                path.display()
            ))
        })
}

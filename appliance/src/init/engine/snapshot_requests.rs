//! The engine's snapshot side: `snapshot` requests and the periodic tasks, run by the same
//! minute tick as the scrub schedule. A task that is due (a slot passed since its last run)
//! takes one snapshot, then prunes its own old ones by its retention. At boot every task is
//! looked at once, so a slot missed while the box was off is caught up exactly once.

use std::time::{Duration, Instant};

use super::Appliance;
use crate::config::snapshots::{prune, SnapshotTask, Taken};
use crate::config::{DatasetName, SnapshotName};
use crate::console::request::{SnapshotRequest, Table};
use crate::console::{Reply, Request};
use crate::storage::pool::now;
use crate::storage::snapshots::{self, SnapshotInfo};
use crate::system::clock::{console_time, zone, zone_name};
use crate::system::disks::human_size;

/// How long `snapshot list` and `dataset list` spend measuring the space snapshots hold.
pub(super) const MEASURE_BUDGET: Duration = Duration::from_secs(5);

impl Appliance {
    fn require_dataset(&self, dataset: &DatasetName) -> Result<(), String> {
        self.require_pool()?;
        if self.config.dataset(dataset).is_none() {
            return Err(format!(
                "there is no dataset '{}'; 'dataset list' shows them",
                dataset.as_str()
            ));
        }
        Ok(())
    }

    fn snapshot_exists(&self, dataset: &DatasetName, name: &SnapshotName) -> bool {
        snapshots::list(dataset.as_str())
            .iter()
            .any(|s| &s.name == name)
    }

    /// Serves the new set of snapshot mounts over NFS.
    fn snapshots_changed(&self) {
        self.apply_nfs(&self.config);
    }

    pub(super) fn snapshot_request(&mut self, request: SnapshotRequest) -> Result<Reply, String> {
        match request {
            SnapshotRequest::List { dataset } => {
                self.require_pool()?;
                let datasets: Vec<DatasetName> = match dataset {
                    Some(d) => {
                        self.require_dataset(&d)?;
                        vec![d]
                    }
                    None => self
                        .config
                        .datasets
                        .iter()
                        .map(|d| d.name.clone())
                        .collect(),
                };
                let deadline = Instant::now() + MEASURE_BUDGET;
                let mut rows = Vec::new();
                for ds in &datasets {
                    for s in snapshots::list(ds.as_str()) {
                        let (held, complete) =
                            snapshots::held_bytes(ds.as_str(), &s.name, deadline);
                        rows.push(vec![
                            format!("{}@{}", ds.as_str(), s.name),
                            console_time(s.created),
                            format!("{}{}", if complete { "" } else { "≥" }, human_size(held)),
                            s.name
                                .task()
                                .map_or("manual".to_owned(), |t| format!("task {t}")),
                        ]);
                    }
                }
                Ok(Reply::Table(Table {
                    headers: vec!["SNAPSHOT", "CREATED", "HELD", "BY"],
                    rows,
                    empty: "no snapshots; take one with 'snapshot create DATASET@NAME'".into(),
                    notes: vec![
                        "HELD is the space only that snapshot keeps (freed by destroying it)"
                            .into(),
                    ],
                }))
            }
            SnapshotRequest::Create { dataset, name } => {
                self.require_dataset(&dataset)?;
                if self.snapshot_exists(&dataset, &name) {
                    return Err(format!(
                        "snapshot {}@{} exists; choose another name",
                        dataset.as_str(),
                        name
                    ));
                }
                let info = snapshots::create(self.pool_name(), dataset.as_str(), &name)?;
                self.snapshots_changed();
                Ok(Reply::Done(format!(
                    "snapshot {}@{} taken at {}; clients see it in {}/{}",
                    dataset.as_str(),
                    name,
                    console_time(info.created),
                    snapshots::SNAPSHOT_DIR,
                    name
                )))
            }
            SnapshotRequest::Destroy { dataset, name } => {
                self.require_dataset(&dataset)?;
                snapshots::destroy(self.pool_name(), dataset.as_str(), &name)?;
                self.snapshots_changed();
                Ok(Reply::Done(format!(
                    "snapshot {}@{} destroyed",
                    dataset.as_str(),
                    name
                )))
            }
            SnapshotRequest::Rollback {
                dataset,
                name,
                confirmed,
            } => {
                self.require_dataset(&dataset)?;
                if !self.snapshot_exists(&dataset, &name) {
                    return Err(format!(
                        "there is no snapshot {}@{}; 'snapshot list {}' shows them",
                        dataset.as_str(),
                        name,
                        dataset.as_str()
                    ));
                }
                if !confirmed {
                    return Ok(Reply::Confirm {
                        question: format!(
                            "Rolling {} back to {} discards every change made since {}. Type the dataset's name ({}) to confirm, anything else to cancel:",
                            dataset.as_str(),
                            name,
                            snapshots::list(dataset.as_str())
                                .iter()
                                .find(|s| s.name == name)
                                .map_or_else(String::new, |s| console_time(s.created)),
                            dataset.as_str()
                        ),
                        answers: vec![dataset.as_str().to_owned()],
                        request: Box::new(Request::Snapshot(SnapshotRequest::Rollback {
                            dataset,
                            name,
                            confirmed: false,
                        })),
                    });
                }
                let started = Instant::now();
                let report = snapshots::rollback(self.pool_name(), dataset.as_str(), &name)?;
                // Clients of the shares must look again: the kernel forgets cached handles.
                self.snapshots_changed();
                Ok(Reply::Done(format!(
                    "{} rolled back to {} in {:.1} s: {} files and {} directories restored, {} files unchanged, {} entries removed, {}",
                    dataset.as_str(),
                    name,
                    started.elapsed().as_secs_f64(),
                    report.files,
                    report.directories,
                    report.unchanged,
                    report.removed,
                    if report.copied_bytes == 0 {
                        "no data copied".to_owned()
                    } else {
                        format!("{} copied", human_size(report.copied_bytes))
                    }
                )))
            }
            SnapshotRequest::Clone {
                dataset,
                name,
                target,
            } => {
                self.require_dataset(&dataset)?;
                let ds =
                    crate::storage::pool::dataset_clone(&self.config, &dataset, &name, &target)?;
                let mut new = self.config.clone();
                new.datasets.push(ds);
                if let Err(e) = self.commit(new) {
                    let _ =
                        crate::storage::pool::dataset_destroy(&self.config_with(&target), &target);
                    return Err(e);
                }
                Ok(Reply::Done(format!(
                    "dataset {} created from {}@{} at {}",
                    target.as_str(),
                    dataset.as_str(),
                    name,
                    crate::storage::dataset_mountpoint(self.pool_name(), target.as_str()).display()
                )))
            }
            SnapshotRequest::TaskList => {
                let rows = self
                    .config
                    .snapshot_tasks
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.dataset.to_string(),
                            t.schedule.in_zone(&zone_name()).to_string(),
                            t.retention.to_string(),
                            console_time(t.schedule.next_slot(now(), &zone())),
                            self.task_results
                                .get(&t.id)
                                .cloned()
                                .unwrap_or_else(|| "not run since boot".into()),
                        ]
                    })
                    .collect();
                Ok(Reply::Table(Table {
                    headers: vec!["ID", "DATASET", "SCHEDULE", "RETENTION", "NEXT RUN", "LAST RESULT"],
                    rows,
                    empty: "no snapshot tasks; add one with 'snapshot task add DATASET every 1h keep 24'".into(),
                    notes: Vec::new(),
                }))
            }
            SnapshotRequest::TaskAdd {
                dataset,
                schedule,
                retention,
            } => {
                self.require_dataset(&dataset)?;
                let mut new = self.config.clone();
                let id = new.next_task_id;
                new.next_task_id = id.checked_add(1).ok_or(
                    "no task id is left; remove the configuration's tasks and start again",
                )?;
                new.snapshot_tasks.push(SnapshotTask {
                    id,
                    dataset: dataset.clone(),
                    schedule,
                    retention,
                    last_run: now(),
                });
                self.commit(new)?;
                Ok(Reply::Done(format!(
                    "snapshot task {id}: {} {}, {retention}; first run {}",
                    dataset.as_str(),
                    schedule.in_zone(&zone_name()),
                    console_time(schedule.next_slot(now(), &zone()))
                )))
            }
            SnapshotRequest::TaskRemove { id } => {
                let mut new = self.config.clone();
                let before = new.snapshot_tasks.len();
                new.snapshot_tasks.retain(|t| t.id != id);
                if new.snapshot_tasks.len() == before {
                    return Err(format!(
                        "there is no snapshot task {id}; 'snapshot task list' shows them"
                    ));
                }
                self.commit(new)?;
                self.task_results.remove(&id);
                Ok(Reply::Done(format!(
                    "snapshot task {id} removed; its snapshots stay until you destroy them"
                )))
            }
        }
    }

    /// Runs every due snapshot task: one snapshot each, then its pruning. Saves the tasks'
    /// last runs once at the end.
    pub(super) fn run_snapshot_tasks(&mut self) {
        if self.require_pool().is_err() || self.config.snapshot_tasks.is_empty() {
            return;
        }
        let at = now();
        let zone = zone();
        let mut new = self.config.clone();
        let mut changed = false;
        for task in new.snapshot_tasks.iter_mut() {
            if !task.is_due(at, &zone) {
                continue;
            }
            let result = self.run_task(task, at);
            match &result {
                Ok(line) => log::info!("snapshot task {}: {line}", task.id),
                Err(e) => log::error!("snapshot task {}: {e}", task.id),
            }
            self.task_alert(task.id, task.dataset.as_str(), result.as_ref().err());
            self.task_results.insert(
                task.id,
                format!(
                    "{}: {}",
                    console_time(at),
                    result.unwrap_or_else(|e| format!("FAILED: {e}"))
                ),
            );
            task.last_run = at;
            changed = true;
        }
        if changed {
            self.snapshots_changed();
            if let Err(e) = self.commit(new) {
                log::error!("saving the snapshot tasks' last runs: {e}");
            }
        }
    }

    fn run_task(&self, task: &SnapshotTask, at: u64) -> Result<String, String> {
        let dataset = task.dataset.as_str();
        let existing = snapshots::list(dataset);
        let mut name = SnapshotName::automatic(task.id, at);
        let mut n = 2;
        while existing.iter().any(|s| s.name == name) {
            name = SnapshotName::automatic(task.id, at).with_suffix(n);
            n += 1;
        }
        let taken = snapshots::create(self.pool_name(), dataset, &name)?;
        let all: Vec<Taken> = existing
            .into_iter()
            .chain(std::iter::once(taken))
            .map(|s: SnapshotInfo| Taken {
                name: s.name,
                created: s.created,
            })
            .collect();
        let mut pruned = Vec::new();
        for old in prune(task, &all, at) {
            match snapshots::destroy(self.pool_name(), dataset, &old) {
                Ok(()) => pruned.push(old.to_string()),
                Err(e) => log::warn!("snapshot task {}: pruning {dataset}@{old}: {e}", task.id),
            }
        }
        Ok(format!(
            "took {dataset}@{name}{}",
            if pruned.is_empty() {
                String::new()
            } else {
                format!(", pruned {}", pruned.join(", "))
            }
        ))
    }

    /// The `snapshots` line of `status`.
    pub(super) fn snapshot_status(&self) -> String {
        let tasks = &self.config.snapshot_tasks;
        if tasks.is_empty() {
            return "no periodic tasks".into();
        }
        let at = now();
        let zone = zone();
        let next = tasks
            .iter()
            .map(|t| (t.schedule.next_slot(at, &zone), t))
            .min_by_key(|(slot, _)| *slot);
        let last = tasks
            .iter()
            .filter_map(|t| self.task_results.get(&t.id).map(|r| (t.id, r)))
            .max_by_key(|(_, r)| (*r).clone());
        format!(
            "{} task(s); next run {}{}",
            tasks.len(),
            next.map_or_else(String::new, |(slot, t)| format!(
                "{} (task {}, {})",
                console_time(slot),
                t.id,
                t.dataset.as_str()
            )),
            last.map_or_else(String::new, |(id, r)| format!("; last: task {id} at {r}"))
        )
    }
}

impl Appliance {
    /// One alert per failing task (`task.ID.failed`): a task failing every minute does not
    /// pile them up, and a task that works again clears it.
    pub(super) fn task_alert(&mut self, task: u32, dataset: &str, failure: Option<&String>) {
        let id = format!("task.{task}.failed");
        match failure {
            Some(e) => self.raise_alert(crate::alerts::Raise {
                id: &id,
                severity: crate::alerts::Severity::Warning,
                title: format!("snapshot task {task} ({dataset}) failed"),
                message: format!("snapshot task {task} failed: {e}"),
                dismissible: false,
            }),
            None => self.clear_alert(&id),
        }
    }
}

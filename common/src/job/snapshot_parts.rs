//! A snapshot run too big for one invocation: still one snapshot per run.
//!
//! On a queue, a tree over the part limits is split into parts (as a mirror backup is); each
//! part archives its files as a *slice*, a snapshot tagged `backup-worker-partial`. A part whose
//! deadline comes near saves what it archived as a slice and hands the rest back with the ids
//! of its slices so far. When a part's last slice is in, it records the part as done; the part
//! that completes the run merges every slice into the run's snapshot (directories united,
//! nothing read or uploaded again) and deletes the slices ([`crate::snapshot::merge`]). A
//! single invocation with a deadline works the same way as a run of one part.
//!
//! State (beside the repository, in `.backup-worker/runs/<run>/`): each slice's report by its
//! snapshot id, each finished part's slice ids, who merges, and the run's summary. Written by
//! name, so a duplicate delivery overwrites rather than adds.

use std::sync::Arc;

use bytes::Bytes;

use super::parts::{self, digest, json, new_run_id, part_message, part_spec, split};
use super::snapshot::blocking;
use super::Run;
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::message::{BackupJob, PartSpec};
use crate::result::{JobResult, PartReport, RunReport};
use crate::snapshot::backend::ObjectBackend;
use crate::snapshot::{merge, Archived, SnapshotReport, SnapshotSpec};
use crate::storage::{Destination, SourceFile};

pub(super) struct Slices<'a> {
    job: &'a BackupJob,
    /// The repository's place, for the run's state.
    state: Arc<dyn Destination>,
    backend: Arc<ObjectBackend>,
    password: Secret,
    place: Place,
}

/// Where one part stands in its run.
struct Place {
    run_id: String,
    index: u32,
    count: u32,
    /// Slices this part saved in earlier invocations.
    earlier: Vec<String>,
}

impl<'a> Slices<'a> {
    pub fn new(
        job: &'a BackupJob,
        state: Arc<dyn Destination>,
        backend: Arc<ObjectBackend>,
        password: Secret,
    ) -> Self {
        let place = match &job.part {
            Some(p) => Place {
                run_id: p.run_id.clone(),
                index: p.index,
                count: p.count,
                earlier: p.snapshots.clone(),
            },
            // A run of one part, should this invocation hand back.
            None => Place {
                run_id: new_run_id(job),
                index: 0,
                count: 1,
                earlier: Vec::new(),
            },
        };
        Slices {
            job,
            state,
            backend,
            password,
            place,
        }
    }

    /// How a snapshot of this job is labelled (a slice: by its run).
    pub fn spec(&self, partial: bool, memory: u64) -> SnapshotSpec {
        SnapshotSpec {
            // restic's "host" names the machine the data comes from: the source storage's name.
            host: self.job.source.storage.clone(),
            tags: self.job.tags.clone(),
            init: self.job.init,
            partial: partial.then(|| self.place.run_id.clone()),
            memory,
        }
    }

    /// A part delivered again after its run was merged (or while it is): nothing to do.
    pub async fn already_merged(&self, result: &mut JobResult) -> Result<bool> {
        let run = &self.place.run_id;
        let merging = self.state.get_state(&format!("runs/{run}/merging")).await?;
        if self.job.part.is_none() || merging.is_none() {
            return Ok(false);
        }
        tracing::info!(%run, "the run is merged already: this delivery has nothing to do");
        result.run = Some(report(run, self.place.count, true));
        Ok(true)
    }

    pub fn too_big(&self, files: &[SourceFile]) -> bool {
        let options = &self.job.options;
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        files.len() > options.part_max_files as usize || bytes > options.part_max_bytes.bytes()
    }

    pub async fn part_files(
        &self,
        part: &PartSpec,
        result: &mut JobResult,
    ) -> Result<Vec<SourceFile>> {
        result.part = Some(PartReport {
            run_id: part.run_id.clone(),
            index: part.index,
            count: part.count,
        });
        parts::part_files(self.state.as_ref(), part).await
    }

    /// Split `files` into parts, one message each.
    pub async fn plan(&self, files: Vec<SourceFile>, result: &mut JobResult) -> Result<()> {
        let options = &self.job.options;
        let slices = split(
            &files,
            options.part_max_files as usize,
            options.part_max_bytes.bytes(),
        );
        let run_id = new_run_id(self.job);
        let count = slices.len() as u32;
        for (index, slice) in slices.iter().enumerate() {
            let spec =
                part_spec(self.state.as_ref(), &run_id, index as u32, count, slice, "").await?;
            result.follow_up.push(part_message(self.job, spec)?);
        }
        result.run = Some(report(&run_id, count, false));
        tracing::info!(%run_id, parts = count, files = files.len(), "snapshot run planned");
        Ok(())
    }

    /// Hand `left` back for the next invocation, with the slices saved so far.
    pub async fn hand_back(
        &self,
        left: Vec<SourceFile>,
        saved: Vec<String>,
        result: &mut JobResult,
    ) -> Result<()> {
        let place = &self.place;
        let mut spec = part_spec(
            self.state.as_ref(),
            &place.run_id,
            place.index,
            place.count,
            &left,
            &format!(".rest-{}", saved.len()),
        )
        .await?;
        spec.snapshots = [place.earlier.clone(), saved].concat();
        result.follow_up.push(part_message(self.job, spec)?);
        if self.job.part.is_none() {
            result.run = Some(report(&place.run_id, place.count, false));
        }
        tracing::info!(run_id = %place.run_id, left = left.len(), "snapshot slice handed back before the deadline");
        Ok(())
    }

    /// A slice was saved: hand back what is left, or finish the part (and maybe the run).
    pub async fn after(
        &self,
        archived: Archived,
        ctx: &Run<'_>,
        result: &mut JobResult,
    ) -> Result<()> {
        let place = &self.place;
        let id = archived.report.id.clone();
        self.put(
            &format!("runs/{}/slices/{id}.json", place.run_id),
            &archived.report,
        )
        .await?;
        if !archived.left_over.is_empty() {
            return self.hand_back(archived.left_over, vec![id], result).await;
        }
        let ids = [place.earlier.clone(), vec![id]].concat();
        let run = &place.run_id;
        // One marker per delivery (a duplicate's slices are merged too: the same files again).
        let marker = format!("runs/{run}/parts/{}-{}.json", place.index, digest(&ids)?);
        self.put(&marker, &ids).await?;
        let markers = self.state.list_state(&format!("runs/{run}/parts")).await?;
        let done = done_parts(&markers);
        if done < place.count {
            result.run = Some(report(run, place.count, false));
            return Ok(());
        }
        self.finish_run(ctx, result).await
    }

    /// Every part is done: merge the slices into the run's snapshot, once.
    async fn finish_run(&self, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
        let place = &self.place;
        let run = &place.run_id;
        if let Some(done) = self
            .get::<SnapshotReport>(&format!("runs/{run}/summary.json"))
            .await?
        {
            result.snapshot = Some(done); // merged already (a duplicate delivery)
            result.run = Some(report(run, place.count, true));
            return Ok(());
        }
        let claim = Bytes::from(place.index.to_string());
        let claimed = self
            .state
            .create_state(&format!("runs/{run}/merging"), claim.clone())
            .await?;
        let mine = self.state.get_state(&format!("runs/{run}/merging")).await? == Some(claim);
        if !claimed && !mine {
            result.run = Some(report(run, place.count, false)); // another part merges
            return Ok(());
        }
        let mut ids = Vec::new();
        for marker in self.state.list_state(&format!("runs/{run}/parts")).await? {
            let part: Vec<String> = self.need(&format!("runs/{run}/parts/{marker}")).await?;
            ids.extend(part);
        }
        ids.sort();
        ids.dedup();
        let mut total = SnapshotReport::default();
        for id in &ids {
            total.add(
                &self
                    .need::<SnapshotReport>(&format!("runs/{run}/slices/{id}.json"))
                    .await?,
            );
        }
        let (backend, password) = (self.backend.clone(), self.password.clone());
        let spec = self.spec(false, ctx.memory.total());
        let (merged, run_id) = (ids.clone(), run.clone());
        total.id =
            blocking(move || merge::merge(backend, &password, &merged, &run_id, &spec)).await?;
        self.put(&format!("runs/{run}/summary.json"), &total)
            .await?;
        tracing::info!(%run, snapshot = %total.id, slices = ids.len(), "snapshot run merged");
        result.snapshot = Some(total);
        result.run = Some(report(run, place.count, true));
        Ok(())
    }

    async fn put(&self, name: &str, value: &impl serde::Serialize) -> Result<()> {
        self.state.put_state(name, json(value)?).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.state.get_state(name).await? {
            None => Ok(None),
            Some(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| Error::Internal(format!("the run state {name} is unreadable: {e}"))),
        }
    }

    async fn need<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.get(name)
            .await?
            .ok_or_else(|| Error::Internal(format!("the run state {name} is missing")))
    }
}

/// How many different parts the markers `<index>-<digest>.json` say are done.
fn done_parts(markers: &[String]) -> u32 {
    let mut indices: Vec<&str> = markers
        .iter()
        .filter_map(|m| m.split_once('-').map(|(index, _)| index))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    indices.len() as u32
}

fn report(run_id: &str, parts: u32, complete: bool) -> RunReport {
    RunReport {
        run_id: run_id.to_string(),
        parts,
        complete,
        summary: None,
    }
}

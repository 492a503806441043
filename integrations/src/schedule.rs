//! An integration's frequency as planner schedules: one per (integration, data type), named
//! `integration:<id>:<data type>`, enqueueing `sync` with
//! `{"integration_id", "data_type", "trigger": "schedule"}`. The planner spreads them: a
//! frequency's slot is offset by a stable hash of the schedule's name (so 10 000 hourly
//! integrations do not all start at :00); a cron expression runs when the admin said.
//! `manual` has no schedule; `realtime` has none either: its syncs are driven by events and
//! provider webhooks, not the clock. Schedules are created through the planner's API
//! (source `api`), so `hangar schedules sync --prune` and the file sync never touch them.
//! A disabled integration, or one that needs re-authorisation, keeps its schedules
//! disabled (no next run); disabling also cancels its waiting jobs.

use hangar_schedules::{NewSchedule, ScheduleError, ScheduleFilter, Spec};
use serde_json::json;

use crate::context::{IntegrationContext, KINDS, SYNC};
use crate::integration::{Integration, Status};

/// The schedule name of (`integration`, `data_type`).
pub fn schedule_name(integration_id: &str, data_type: &str) -> String {
    format!("integration:{integration_id}:{data_type}")
}

/// The schedules `integration` should have: one per data type for a planned frequency,
/// enabled while the integration is active.
pub fn desired(integration: &Integration) -> Vec<NewSchedule> {
    let planned = Spec::parse(&integration.frequency).is_ok_and(|s| s.is_planned());
    if !planned {
        return Vec::new();
    }
    integration
        .data_types
        .iter()
        .map(|data_type| {
            let mut schedule = NewSchedule::new(
                schedule_name(&integration.id, data_type),
                integration.frequency.clone(),
                SYNC,
            );
            schedule.args = json!({
                "integration_id": integration.id,
                "data_type": data_type,
                "trigger": "schedule",
            });
            schedule.enabled = integration.enabled && integration.status == Status::Active;
            schedule.workspace_id = Some(integration.workspace_id.clone());
            schedule.integration = Some(integration.id.clone());
            schedule.data_type = Some(data_type.clone());
            schedule
        })
        .collect()
}

impl IntegrationContext {
    /// Makes the planner's schedules of `integration` what its settings say: creates or
    /// updates one per data type (enabled only while it is active), deletes those of data
    /// types no longer enabled or of a frequency that has none. Returns how many are planned.
    pub async fn apply_schedules(&self, integration: &Integration) -> Result<usize, ScheduleError> {
        let desired = desired(integration);
        let existing = self
            .schedules
            .list(&ScheduleFilter {
                workspace_id: Some(integration.workspace_id.clone()),
                limit: 10_000,
            })
            .await?;
        for row in existing
            .iter()
            .filter(|r| r.integration.as_deref() == Some(integration.id.as_str()))
            .filter(|r| !desired.iter().any(|d| d.name == r.name))
        {
            self.schedules.delete(&row.name).await?;
        }
        self.schedules.upsert_many(&desired).await?;
        Ok(desired.iter().filter(|d| d.enabled).count())
    }

    /// Stops `integration`'s schedules (needs re-authorisation): they stay, disabled.
    pub async fn stop_schedules(&self, integration: &Integration) -> Result<(), ScheduleError> {
        let mut stopped = integration.clone();
        stopped.enabled = false;
        self.schedules.upsert_many(&desired(&stopped)).await?;
        Ok(())
    }

    /// Cancels the waiting `sync` and `token_refresh` jobs of `integration`.
    pub async fn cancel_waiting_jobs(
        &self,
        integration: &Integration,
        reason: &str,
    ) -> Result<u64, hangar_workers::store::StoreError> {
        self.store
            .cancel_waiting_jobs(
                &integration.workspace_id,
                &KINDS,
                "integration_id",
                &integration.id,
                reason,
            )
            .await
    }
}

//! GroupRegistryActor: loads groups and system settings, computes each group's effective config,
//! and publishes an immutable [`Snapshot`] that request handlers read without locking.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::domain::{split_keys, GroupId, GroupRecord, SubGroupLink};
use crate::ports::{ConfigRepo, PortError};
use crate::settings::{EffectiveConfig, SystemSettings};
use crate::weighted::SmoothWeighted;

/// A group ready for request handling.
#[derive(Debug)]
pub struct GroupView {
    pub record: GroupRecord,
    pub config: EffectiveConfig,
    pub proxy_keys: Vec<String>,
    /// Upstream base URLs (trailing `/` trimmed) with their weights.
    pub upstreams: SmoothWeighted<String>,
    /// `{app_url}/proxy/{name}`.
    pub endpoint: String,
    /// For aggregate groups: member group ids with their weights (weight 0 members excluded).
    pub members: SmoothWeighted<GroupId>,
    /// Model redirect rules, source model → target model.
    pub redirects: HashMap<String, String>,
}

/// Everything a handler needs to route a request, swapped atomically on every reload.
#[derive(Debug)]
pub struct Snapshot {
    pub settings: SystemSettings,
    pub global_proxy_keys: Vec<String>,
    pub groups: HashMap<String, Arc<GroupView>>,
    pub by_id: HashMap<GroupId, Arc<GroupView>>,
}

impl Snapshot {
    /// A snapshot built from groups and stored settings.
    pub fn build(
        groups: Vec<GroupRecord>,
        links: &[SubGroupLink],
        stored: &HashMap<String, String>,
    ) -> Self {
        let settings = SystemSettings::from_stored(stored);
        let app_url = settings.app_url().trim_end_matches('/').to_string();
        let mut by_name = HashMap::with_capacity(groups.len());
        let mut by_id = HashMap::with_capacity(groups.len());
        for record in groups {
            let upstreams = SmoothWeighted::new(
                record
                    .parsed_upstreams()
                    .into_iter()
                    .map(|u| (u.url.trim().trim_end_matches('/').to_string(), u.weight)),
            );
            let members = SmoothWeighted::new(
                links
                    .iter()
                    .filter(|l| l.group_id == record.id)
                    .map(|l| (l.sub_group_id, l.weight)),
            );
            let redirects = record
                .model_redirect_rules
                .iter()
                .filter_map(|(from, to)| to.as_str().map(|to| (from.clone(), to.to_string())))
                .collect();
            let view = Arc::new(GroupView {
                members,
                redirects,
                config: settings.effective(&record.config),
                proxy_keys: split_keys(&record.proxy_keys),
                endpoint: format!("{app_url}/proxy/{}", record.name),
                upstreams,
                record,
            });
            by_id.insert(view.record.id, Arc::clone(&view));
            by_name.insert(view.record.name.clone(), view);
        }
        Self {
            global_proxy_keys: settings.proxy_key_list(),
            settings,
            groups: by_name,
            by_id,
        }
    }

    /// An empty snapshot with default settings (before the first load).
    pub fn empty() -> Self {
        Self::build(Vec::new(), &[], &HashMap::new())
    }
}

/// The published snapshot, shared by the registry (writer) and every handler (readers).
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// The group registry actor.
pub struct GroupRegistryActor {
    repo: Arc<dyn ConfigRepo>,
    shared: SharedSnapshot,
}

impl GroupRegistryActor {
    /// A registry that loads from `repo` and publishes into `shared`.
    pub fn new(repo: Arc<dyn ConfigRepo>, shared: SharedSnapshot) -> Self {
        Self { repo, shared }
    }
}

impl Actor for GroupRegistryActor {
    type Context = Context<Self>;
}

/// Reloads groups and settings and publishes a new snapshot. Reloads run one at a time, so an
/// older read can never overwrite a newer one.
#[derive(Message)]
#[rtype(result = "Result<(), PortError>")]
pub struct Reload;

impl Handler<Reload> for GroupRegistryActor {
    type Result = AtomicResponse<Self, Result<(), PortError>>;

    fn handle(&mut self, _msg: Reload, _ctx: &mut Self::Context) -> Self::Result {
        let repo = Arc::clone(&self.repo);
        AtomicResponse::new(Box::pin(
            async move {
                let groups = repo.load_groups().await?;
                let links = repo.load_sub_groups().await?;
                let settings = repo.load_settings().await?;
                Ok::<_, PortError>(Snapshot::build(groups, &links, &settings))
            }
            .into_actor(self)
            .map(|built, act, _ctx| {
                let snapshot = built?;
                tracing::debug!(groups = snapshot.groups.len(), "Published group snapshot.");
                act.shared.store(Arc::new(snapshot));
                Ok(())
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::Utc;
    use parking_lot::Mutex;
    use serde_json::json;

    struct Repo(Mutex<(Vec<GroupRecord>, HashMap<String, String>)>);

    #[async_trait]
    impl ConfigRepo for Repo {
        async fn load_groups(&self) -> Result<Vec<GroupRecord>, PortError> {
            Ok(self.0.lock().0.clone())
        }
        async fn load_settings(&self) -> Result<HashMap<String, String>, PortError> {
            Ok(self.0.lock().1.clone())
        }
        async fn load_sub_groups(&self) -> Result<Vec<SubGroupLink>, PortError> {
            Ok(vec![
                SubGroupLink {
                    group_id: 1,
                    sub_group_id: 2,
                    weight: 3,
                },
                SubGroupLink {
                    group_id: 1,
                    sub_group_id: 3,
                    weight: 0,
                },
            ])
        }
    }

    fn group(id: GroupId, name: &str, config: serde_json::Value) -> GroupRecord {
        let now = Utc::now().naive_utc();
        GroupRecord {
            id,
            name: name.into(),
            display_name: String::new(),
            description: String::new(),
            group_type: "standard".into(),
            upstreams: json!([{"url": "http://a/", "weight": 1}]),
            channel_type: "openai".into(),
            sort: 0,
            test_model: "m".into(),
            validation_endpoint: String::new(),
            param_overrides: json!({}),
            config: config.as_object().cloned().unwrap_or_default(),
            header_rules: vec![],
            model_redirect_rules: Default::default(),
            model_redirect_strict: false,
            proxy_keys: "g1, g2".into(),
            last_validated_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[actix_rt::test]
    async fn reload_publishes_effective_configs() {
        let settings = HashMap::from([
            ("max_retries".to_string(), "7".to_string()),
            ("proxy_keys".to_string(), "p1,p2".to_string()),
            ("app_url".to_string(), "http://x:1/".to_string()),
        ]);
        let repo = Arc::new(Repo(Mutex::new((
            vec![
                group(1, "a", json!({})),
                group(2, "b", json!({"max_retries": 1})),
            ],
            settings,
        ))));
        let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let addr = GroupRegistryActor::new(repo.clone(), shared.clone()).start();
        addr.send(Reload).await.unwrap().unwrap();
        let snap = shared.load();
        assert_eq!(snap.groups["a"].config.max_retries, 7);
        assert_eq!(snap.groups["b"].config.max_retries, 1);
        assert_eq!(snap.groups["a"].proxy_keys, vec!["g1", "g2"]);
        assert_eq!(snap.groups["a"].endpoint, "http://x:1/proxy/a");
        assert_eq!(
            snap.groups["a"].upstreams.pick().map(String::as_str),
            Some("http://a")
        );
        assert_eq!(snap.global_proxy_keys, vec!["p1", "p2"]);
        assert_eq!(snap.by_id[&2].record.name, "b");
        assert_eq!(
            snap.groups["a"]
                .members
                .items()
                .copied()
                .collect::<Vec<_>>(),
            vec![2],
            "weight-0 members are dropped"
        );

        repo.0.lock().0.pop();
        addr.send(Reload).await.unwrap().unwrap();
        assert!(!shared.load().groups.contains_key("b"));
    }
}

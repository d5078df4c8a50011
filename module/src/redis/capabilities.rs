//! What this server offers of the module API that came after Redis 7.0, read once at load
//! from the API table and said in one log line.
//!
//! Redis 7.0 is the oldest server the module runs on; Redis 7.2+ / 7.4+ and Valkey 8 add
//! entries the module uses where they exist, each with a fallback where they do not:
//!
//! | capability | API | used for | without it |
//! |---|---|---|---|
//! | post-notification jobs | AddPostNotificationJob (7.2) | sync triggers' writes | the writes run inside the notification |
//! | ACL categories | SetCommandACLCategories (7.2) | RG.* in @admin, @dangerous... | ACL rules name RG.* commands |
//! | @gears category | AddACLCategory (7.4) | `+@gears` | the other categories only |
//! | context user | SetContextUser (7.2) | RM_Call checks the owner's ACL itself | ACLCheckCommandPermissions before the call |
//! | module configs | RegisterNumericConfig (7.0) | CONFIG GET/SET rg.* | load arguments and RG.CONFIGSET |
//! | cluster API | GetMyClusterID | this node's id | CLUSTER MYID |
//!
//! The table is filled by RedisModule_Init before OnLoad runs and never changes; only
//! presence is read here. `GEARS_TEST_WITHOUT=<name>,...` in the server's environment hides
//! capabilities (the names of [`Capabilities::line`]), so tests can run each fallback on a
//! server that has the real thing.

use std::sync::OnceLock;

use redis_module::raw;

/// Which of the newer API entries this server has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub post_notification_jobs: bool,
    pub acl_categories: bool,
    pub acl_category_add: bool,
    pub context_user: bool,
    pub module_configs: bool,
    pub cluster_api: bool,
}

static DETECTED: OnceLock<Capabilities> = OnceLock::new();

impl Capabilities {
    /// The names the log line and GEARS_TEST_WITHOUT use, with each one's presence.
    pub fn named(&self) -> [(&'static str, bool); 6] {
        [
            ("post-notification-jobs", self.post_notification_jobs),
            ("acl-categories", self.acl_categories),
            ("acl-category-add", self.acl_category_add),
            ("context-user", self.context_user),
            ("module-configs", self.module_configs),
            ("cluster-api", self.cluster_api),
        ]
    }

    /// The load line: `name yes|no` for each.
    pub fn line(&self) -> String {
        let each: Vec<String> = self
            .named()
            .iter()
            .map(|(name, on)| format!("{name} {}", if *on { "yes" } else { "no" }))
            .collect();
        format!("gears: this server offers: {}", each.join(", "))
    }

    /// These, less the ones `hidden` names (comma-separated).
    fn without(mut self, hidden: &str) -> Capabilities {
        for name in hidden.split(',').map(str::trim) {
            match name {
                "post-notification-jobs" => self.post_notification_jobs = false,
                "acl-categories" => self.acl_categories = false,
                "acl-category-add" => self.acl_category_add = false,
                "context-user" => self.context_user = false,
                "module-configs" => self.module_configs = false,
                "cluster-api" => self.cluster_api = false,
                _ => {}
            }
        }
        self
    }
}

/// Whether the API table has the entry (copied out by value: no reference to the static).
macro_rules! has {
    ($entry:ident) => {{
        let entry = raw::$entry;
        entry.is_some()
    }};
}

/// Reads the API table (at load, after RedisModule_Init).
fn detect() -> Capabilities {
    // SAFETY: the API table (redis/mod.rs) is filled by RedisModule_Init before OnLoad and
    // only read afterwards; each entry is an Option, None on a server that lacks it.
    let found = unsafe {
        Capabilities {
            post_notification_jobs: has!(RedisModule_AddPostNotificationJob),
            acl_categories: has!(RedisModule_SetCommandACLCategories)
                && has!(RedisModule_GetCommand),
            acl_category_add: has!(RedisModule_AddACLCategory),
            context_user: has!(RedisModule_SetContextUser)
                && has!(RedisModule_GetModuleUserFromUserName),
            module_configs: has!(RedisModule_RegisterNumericConfig)
                && has!(RedisModule_LoadConfigs),
            cluster_api: has!(RedisModule_GetMyClusterID),
        }
    };
    match std::env::var("GEARS_TEST_WITHOUT") {
        Ok(hidden) => found.without(&hidden),
        Err(_) => found,
    }
}

/// What this server offers (read at the first call: at load).
pub fn get() -> Capabilities {
    *DETECTED.get_or_init(detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Capabilities {
        Capabilities {
            post_notification_jobs: true,
            acl_categories: true,
            acl_category_add: true,
            context_user: true,
            module_configs: true,
            cluster_api: true,
        }
    }

    #[test]
    fn the_line_names_each_with_yes_or_no() {
        let line = all().without("context-user").line();
        assert_eq!(
            line,
            "gears: this server offers: post-notification-jobs yes, acl-categories yes, \
             acl-category-add yes, context-user no, module-configs yes, cluster-api yes"
        );
    }

    #[test]
    fn tests_can_hide_any_of_them() {
        let hidden = all().without(" post-notification-jobs,module-configs ,unknown");
        assert!(!hidden.post_notification_jobs && !hidden.module_configs);
        assert!(hidden.acl_categories && hidden.context_user && hidden.cluster_api);
        for (name, _) in all().named() {
            assert!(!all()
                .without(name)
                .named()
                .iter()
                .any(|(n, on)| *n == name && *on));
        }
    }
}

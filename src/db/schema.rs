//! The diesel schema, written once for SQLite, PostgreSQL and MySQL (see `migrations/<backend>`).

diesel::table! {
    system_settings (id) {
        id -> BigInt,
        setting_key -> Text,
        setting_value -> Text,
        description -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::compat::JsonText;

    groups (id) {
        id -> BigInt,
        name -> Text,
        display_name -> Text,
        proxy_keys -> Text,
        description -> Text,
        group_type -> Text,
        upstreams -> JsonText,
        validation_endpoint -> Text,
        channel_type -> Text,
        sort -> Integer,
        test_model -> Text,
        param_overrides -> JsonText,
        config -> JsonText,
        header_rules -> JsonText,
        model_redirect_rules -> JsonText,
        model_redirect_strict -> Bool,
        last_validated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    group_sub_groups (id) {
        id -> BigInt,
        group_id -> BigInt,
        sub_group_id -> BigInt,
        weight -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        key_value -> Text,
        key_hash -> Text,
        group_id -> BigInt,
        status -> Text,
        notes -> Text,
        request_count -> BigInt,
        failure_count -> BigInt,
        last_used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        total_tokens -> BigInt,
    }
}

diesel::table! {
    request_logs (id) {
        id -> Text,
        timestamp -> Timestamp,
        group_id -> BigInt,
        group_name -> Text,
        parent_group_id -> BigInt,
        parent_group_name -> Text,
        key_value -> Text,
        key_hash -> Text,
        model -> Text,
        is_success -> Bool,
        source_ip -> Text,
        status_code -> Integer,
        request_path -> Text,
        duration -> BigInt,
        error_message -> Text,
        user_agent -> Text,
        request_type -> Text,
        upstream_addr -> Text,
        is_stream -> Bool,
        request_body -> Text,
        input_tokens -> Nullable<BigInt>,
        output_tokens -> Nullable<BigInt>,
        total_tokens -> Nullable<BigInt>,
        cached_tokens -> Nullable<BigInt>,
        cache_write_tokens -> Nullable<BigInt>,
        reasoning_tokens -> Nullable<BigInt>,
        proxy_key -> Text,
    }
}

diesel::table! {
    /// Token sums of final requests per hour, group, model and proxy-key identity.
    usage_hourly_stats (id) {
        id -> BigInt,
        time -> Timestamp,
        group_id -> BigInt,
        model -> Text,
        proxy_key -> Text,
        requests -> BigInt,
        known_requests -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        total_tokens -> BigInt,
        cached_tokens -> BigInt,
        cache_write_tokens -> BigInt,
        reasoning_tokens -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    group_hourly_stats (id) {
        id -> BigInt,
        time -> Timestamp,
        group_id -> BigInt,
        success_count -> BigInt,
        failure_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// How the stored keys are encrypted: no row = plain text; one row (id 1) = encrypted under
    /// the key derivation `kdf_id`, whose derived key produces `verifier`.
    key_encryption (id) {
        id -> Integer,
        kdf_id -> Text,
        verifier -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// One row per running server or `migrate-keys` run, with a heartbeat, so they can refuse to
    /// run at the same time against one database.
    instance_locks (id) {
        id -> Text,
        kind -> Text,
        holder -> Text,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
        host -> Text,
        pid -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// `request_logs` rows per hour and equality-filter values, kept by database triggers.
    request_log_counts (hour, request_type, is_success, status_code) {
        hour -> Timestamp,
        request_type -> Text,
        is_success -> Bool,
        status_code -> Integer,
        log_count -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    system_settings,
    groups,
    group_sub_groups,
    api_keys,
    request_logs,
    request_log_counts,
    group_hourly_stats,
    usage_hourly_stats,
    key_encryption,
    instance_locks,
);

//! What the gateway knows about functions a statement calls.
//!
//! A function is read-only only if it is a known built-in that changes
//! nothing. Functions known to run SQL, touch files, administer the server
//! or change state get a flag. Anything else is unknown and counts as a
//! write (its effect cannot be known from the statement).

/// Effect of a called function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FnEffect {
    /// Known built-in that changes nothing.
    ReadOnly,
    /// Runs SQL given as a string, or reads tables named by a string.
    DynamicSql,
    /// Reads or writes server files or large objects on disk.
    FileAccess,
    /// Administers the server or other sessions.
    Admin,
    /// Changes data or state (sequences, locks, settings...).
    Writes,
    /// Changes settings: `set_config`.
    SetConfig,
    /// Not known to the gateway.
    Unknown,
}

const DYNAMIC_SQL: &[&str] = &[
    "dblink", "dblink_exec", "dblink_open", "dblink_fetch", "dblink_send_query",
    "dblink_get_result", "dblink_connect", "dblink_connect_u", "query_to_xml",
    "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
    "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
    "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
];

const FILE_ACCESS: &[&str] = &[
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
    "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir", "pg_ls_replslotdir", "lo_import", "lo_export", "pg_file_write",
    "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
];

const ADMIN: &[&str] = &[
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_switch_wal", "pg_create_restore_point", "pg_promote", "pg_backup_start",
    "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_drop_replication_slot", "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot", "pg_replication_slot_advance", "pg_logical_emit_message",
    "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_log_backend_memory_contexts",
    "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters", "pg_stat_reset_slru", "pg_stat_reset_replication_slot",
    "pg_stat_reset_subscription_stats", "pg_import_system_collations", "pg_replication_origin_create",
    "pg_replication_origin_drop", "pg_logical_slot_get_changes", "pg_logical_slot_peek_changes",
];

const WRITES: &[&str] = &[
    "nextval", "setval", "lo_create", "lo_creat", "lo_unlink", "lo_open", "lowrite", "lo_put",
    "lo_from_bytea", "lo_truncate", "lo_truncate64", "pg_advisory_lock", "pg_advisory_lock_shared",
    "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all", "pg_notify",
    "txid_current", "pg_current_xact_id", "pg_export_snapshot", "pg_prewarm",
];

/// Built-ins known to change nothing. Names only: schema-qualified calls
/// outside `pg_catalog` are unknown.
const READ_ONLY: &[&str] = &[
    // aggregates and window functions
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "json_agg", "jsonb_agg",
    "json_object_agg", "jsonb_object_agg", "bool_and", "bool_or", "every", "bit_and", "bit_or",
    "bit_xor", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
    "percentile_cont", "percentile_disc", "mode", "rank", "dense_rank", "row_number", "ntile",
    "lag", "lead", "first_value", "last_value", "nth_value", "cume_dist", "percent_rank", "corr",
    "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_count", "regr_r2",
    "regr_avgx", "regr_avgy", "regr_sxx", "regr_syy", "regr_sxy", "xmlagg", "range_agg",
    "range_intersect_agg", "any_value",
    // strings
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "bit_length",
    "substr", "substring", "trim", "btrim", "ltrim", "rtrim", "lpad", "rpad", "concat",
    "concat_ws", "replace", "split_part", "strpos", "position", "left", "right", "repeat",
    "reverse", "initcap", "format", "quote_ident", "quote_literal", "quote_nullable", "md5",
    "sha224", "sha256", "sha384", "sha512", "encode", "decode", "to_hex", "ascii", "chr",
    "regexp_replace", "regexp_match", "regexp_matches", "regexp_split_to_array",
    "regexp_split_to_table", "regexp_like", "regexp_count", "regexp_instr", "regexp_substr",
    "starts_with", "translate", "overlay", "string_to_array", "string_to_table",
    "array_to_string", "to_char", "to_number", "to_date", "to_timestamp", "convert_from",
    "convert_to", "convert", "unistr", "normalize", "text", "bpchar", "varchar", "like",
    "similar_to_escape", "similar_escape", "textlen", "textcat", "string_agg", "casefold",
    "crc32", "crc32c", "get_byte", "set_byte", "get_bit", "set_bit", "bit_count",
    // math
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "exp", "ln",
    "log", "log10", "power", "pow", "mod", "div", "pi", "degrees", "radians", "sin", "cos",
    "tan", "cot", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "greatest", "least",
    "width_bucket", "gcd", "lcm", "factorial", "scale", "min_scale", "trim_scale", "numeric",
    "int2", "int4", "int8", "float4", "float8", "random", "random_normal", "setseed",
    // date and time
    "now", "date_trunc", "date_part", "extract", "age", "make_date", "make_interval",
    "make_time", "make_timestamp", "make_timestamptz", "date_bin", "justify_days",
    "justify_hours", "justify_interval", "isfinite", "transaction_timestamp",
    "statement_timestamp", "clock_timestamp", "timeofday", "timezone", "overlaps", "date",
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "to_timestamp", "date_add", "date_subtract",
    // json
    "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array",
    "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_array_length",
    "jsonb_array_length", "json_each", "jsonb_each", "json_each_text", "jsonb_each_text",
    "json_extract_path", "jsonb_extract_path", "json_extract_path_text",
    "jsonb_extract_path_text", "json_object_keys", "jsonb_object_keys", "json_populate_record",
    "jsonb_populate_record", "json_populate_recordset", "jsonb_populate_recordset",
    "json_to_record", "jsonb_to_record", "json_to_recordset", "jsonb_to_recordset",
    "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "json_typeof", "jsonb_typeof", "jsonb_set", "jsonb_set_lax",
    "jsonb_insert", "jsonb_strip_nulls", "json_strip_nulls", "jsonb_pretty", "jsonb_path_query",
    "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query_array", "jsonb_path_query_first",
    "json_object", "jsonb_object", "json_scalar", "json_serialize",
    // arrays, sets, ranges
    "array_length", "array_upper", "array_lower", "array_dims", "array_ndims", "cardinality",
    "array_append", "array_prepend", "array_cat", "array_remove", "array_replace",
    "array_position", "array_positions", "unnest", "generate_series", "generate_subscripts",
    "array_fill", "trim_array", "array_sample", "array_shuffle", "array_reverse", "array_sort",
    "lower_inc", "upper_inc", "lower_inf", "upper_inf", "isempty", "range_merge", "multirange",
    "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
    // uuids, network, misc
    "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_version", "uuid_extract_timestamp",
    "host", "hostmask", "masklen", "netmask", "network", "family", "abbrev", "broadcast",
    "inet_same_family", "inet_merge", "set_masklen", "num_nonnulls", "num_nulls", "coalesce",
    "nullif", "row", "xmlelement", "xmlforest", "xmlconcat", "xmlparse", "xmlserialize",
    "xpath", "xpath_exists", "xmlexists", "to_tsvector", "to_tsquery", "plainto_tsquery",
    "phraseto_tsquery", "websearch_to_tsquery", "ts_rank", "ts_rank_cd", "ts_headline",
    "setweight", "strip", "numnode", "querytree", "tsvector_to_array", "array_to_tsvector",
    "ts_lexize", "ts_parse", "ts_debug", "ts_token_type", "get_current_ts_config",
    // session and catalog information
    "current_database", "current_schema", "current_schemas", "current_user", "session_user",
    "current_role", "user", "version", "pg_backend_pid", "inet_server_addr", "inet_server_port",
    "inet_client_addr", "inet_client_port", "pg_postmaster_start_time", "pg_conf_load_time",
    "pg_is_in_recovery", "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
    "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_wal_lsn_diff", "format_type",
    "obj_description", "col_description", "shobj_description", "pg_relation_size",
    "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_database_size",
    "pg_tablespace_size", "pg_size_pretty", "pg_size_bytes", "pg_relation_filenode",
    "pg_relation_filepath", "pg_filenode_relation", "pg_column_size", "pg_column_compression",
    "pg_encoding_to_char", "pg_char_to_encoding", "pg_has_role", "row_security_active",
    "pg_typeof", "pg_tablespace_location", "pg_options_to_table", "pg_describe_object",
    "pg_identify_object", "pg_identify_object_as_address", "pg_index_column_has_property",
    "pg_index_has_property", "pg_indexam_has_property", "current_setting", "pg_settings_get_flags",
    "pg_collation_actual_version", "pg_column_is_updatable", "pg_relation_is_updatable",
    "pg_sequence_last_value", "pg_sequence_parameters", "txid_current_if_assigned",
    "pg_current_xact_id_if_assigned", "txid_current_snapshot", "pg_current_snapshot",
    "pg_snapshot_xmin", "pg_snapshot_xmax", "pg_snapshot_xip", "txid_snapshot_xmin",
    "txid_snapshot_xmax", "pg_xact_status", "txid_status", "pg_last_committed_xact",
    "pg_blocking_pids", "pg_safe_snapshot_blocking_pids", "pg_jit_available",
    "pg_listening_channels", "pg_notification_queue_usage", "pg_trigger_depth",
    "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "pg_tablespace_databases",
    "pg_available_extensions", "pg_available_extension_versions", "pg_extension_update_paths",
    "pg_input_is_valid", "pg_input_error_info", "pg_client_encoding", "array_in", "array_out",
    "regclass", "regtype", "oid", "pg_control_system", "pg_control_checkpoint",
    "pg_get_wal_replay_pause_state", "pg_is_wal_replay_paused", "pg_visible_in_snapshot",
    "pg_show_all_settings", "pg_lock_status", "pg_prepared_xact", "pg_cursor",
    "pg_prepared_statement", "pg_timezone_names", "pg_timezone_abbrevs", "pg_config",
    "pg_get_keywords", "pg_get_catalog_foreign_keys", "pg_event_trigger_ddl_commands",
    "pg_mcv_list_items", "pg_get_backend_memory_contexts", "pg_get_shmem_allocations",
    "pg_stat_get_activity", "pg_stat_get_progress_info", "pg_stat_get_backend_idset",
    "pg_stat_get_wal_receiver", "pg_stat_get_subscription", "pg_stat_get_replication_slot",
    "pg_show_replication_origin_status", "pg_get_replication_slots", "pg_get_publication_tables",
    // pgvector (immutable functions shipped by the extension)
    "l2_distance", "inner_product", "cosine_distance", "l1_distance", "vector_dims",
    "vector_norm", "l2_normalize", "binary_quantize", "subvector", "hamming_distance",
    "jaccard_distance",
];

/// Prefixes of read-only catalog-inspection families (`pg_get_*def`,
/// `has_*_privilege`, `pg_*_is_visible`, `to_reg*`, `pg_stat_get_*`).
const READ_ONLY_PREFIXES: &[&str] = &["pg_get_", "has_", "to_reg", "pg_stat_get_"];
const READ_ONLY_SUFFIXES: &[&str] = &["_is_visible"];

/// Classifies a function by its (possibly schema-qualified) name parts.
pub fn classify(parts: &[&str]) -> FnEffect {
    let (schema, name) = match parts {
        [name] => (None, *name),
        [schema, name] => (Some(*schema), *name),
        _ => return FnEffect::Unknown,
    };
    let name_lc = name.to_ascii_lowercase();
    let name = name_lc.as_str();
    // Known dangerous names are flagged in any schema (extensions install
    // dblink & co. wherever they like).
    if DYNAMIC_SQL.contains(&name) {
        return FnEffect::DynamicSql;
    }
    if FILE_ACCESS.contains(&name) {
        return FnEffect::FileAccess;
    }
    if ADMIN.contains(&name) {
        return FnEffect::Admin;
    }
    if name == "set_config" {
        return FnEffect::SetConfig;
    }
    if WRITES.contains(&name) {
        return FnEffect::Writes;
    }
    if schema.is_some_and(|s| !s.eq_ignore_ascii_case("pg_catalog")) {
        return FnEffect::Unknown;
    }
    if READ_ONLY.contains(&name)
        || READ_ONLY_PREFIXES.iter().any(|p| name.starts_with(p))
        || READ_ONLY_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return FnEffect::ReadOnly;
    }
    FnEffect::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify(&["lower"]), FnEffect::ReadOnly);
        assert_eq!(classify(&["pg_catalog", "pg_table_is_visible"]), FnEffect::ReadOnly);
        assert_eq!(classify(&["public", "lower"]), FnEffect::Unknown);
        assert_eq!(classify(&["nextval"]), FnEffect::Writes);
        assert_eq!(classify(&["ext", "dblink_exec"]), FnEffect::DynamicSql);
        assert_eq!(classify(&["my_fn"]), FnEffect::Unknown);
        assert_eq!(classify(&["PG_READ_FILE"]), FnEffect::FileAccess);
    }
}

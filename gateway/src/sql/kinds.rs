//! The statement kinds the gateway knows: parse-tree node name → policy
//! `kind`, command tag and effect class. A node not listed here is an
//! unknown kind and is treated like an unparsed statement.

/// What a statement kind does, before looking at its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads data (may still call something that writes).
    Read,
    /// Changes only the caller's own session state.
    Session,
    /// Transaction control.
    Transaction,
    /// Changes data.
    Write,
    /// Changes schema.
    Ddl,
    /// Changes privileges or roles.
    Privilege,
    /// Server administration (settings, files, libraries).
    Admin,
    /// Runs code the gateway cannot see.
    Opaque,
}

/// One known statement kind.
pub struct Kind {
    /// Parse-tree node name, e.g. `DeleteStmt`.
    pub node: &'static str,
    /// Policy-facing kind, e.g. `delete`.
    pub kind: &'static str,
    /// Command tag Postgres reports.
    pub tag: &'static str,
    /// Effect class.
    pub class: Class,
}

macro_rules! kinds {
    ($($node:literal => $kind:literal, $tag:literal, $class:ident;)*) => {
        /// Every statement node the gateway classifies.
        pub static KINDS: &[Kind] = &[$(Kind { node: $node, kind: $kind, tag: $tag, class: Class::$class }),*];
    };
}

kinds! {
    "SelectStmt" => "select", "SELECT", Read;
    "InsertStmt" => "insert", "INSERT", Write;
    "UpdateStmt" => "update", "UPDATE", Write;
    "DeleteStmt" => "delete", "DELETE", Write;
    "MergeStmt" => "merge", "MERGE", Write;
    "CopyStmt" => "copy", "COPY", Write;
    "TruncateStmt" => "truncate", "TRUNCATE TABLE", Write;
    "ExplainStmt" => "explain", "EXPLAIN", Read;
    "VariableShowStmt" => "show", "SHOW", Read;
    "VariableSetStmt" => "set", "SET", Session;
    "ConstraintsSetStmt" => "set_constraints", "SET CONSTRAINTS", Session;
    "TransactionStmt" => "transaction", "BEGIN", Transaction;
    "DeclareCursorStmt" => "declare_cursor", "DECLARE CURSOR", Read;
    "FetchStmt" => "fetch", "FETCH", Read;
    "ClosePortalStmt" => "close_cursor", "CLOSE CURSOR", Session;
    "PrepareStmt" => "prepare", "PREPARE", Session;
    "ExecuteStmt" => "execute", "EXECUTE", Opaque;
    "DeallocateStmt" => "deallocate", "DEALLOCATE", Session;
    "DiscardStmt" => "discard", "DISCARD", Session;
    "ListenStmt" => "listen", "LISTEN", Session;
    "UnlistenStmt" => "unlisten", "UNLISTEN", Session;
    "NotifyStmt" => "notify", "NOTIFY", Write;
    "LockStmt" => "lock", "LOCK TABLE", Write;
    "CallStmt" => "call", "CALL", Opaque;
    "DoStmt" => "do", "DO", Opaque;
    "VacuumStmt" => "vacuum", "VACUUM", Write;
    "ReindexStmt" => "reindex", "REINDEX", Write;
    "ClusterStmt" => "cluster", "CLUSTER", Write;
    "RefreshMatViewStmt" => "refresh_materialized_view", "REFRESH MATERIALIZED VIEW", Write;
    "CheckPointStmt" => "checkpoint", "CHECKPOINT", Admin;
    "LoadStmt" => "load", "LOAD", Admin;
    "AlterSystemStmt" => "alter_system", "ALTER SYSTEM", Admin;
    "CreateStmt" => "create_table", "CREATE TABLE", Ddl;
    "CreateTableAsStmt" => "create_table_as", "CREATE TABLE AS", Ddl;
    "ViewStmt" => "create_view", "CREATE VIEW", Ddl;
    "IndexStmt" => "create_index", "CREATE INDEX", Ddl;
    "AlterTableStmt" => "alter_table", "ALTER TABLE", Ddl;
    "AlterTableMoveAllStmt" => "alter_table_move_all", "ALTER TABLE", Ddl;
    "DropStmt" => "drop", "DROP", Ddl;
    "RenameStmt" => "rename", "ALTER", Ddl;
    "CommentStmt" => "comment", "COMMENT", Ddl;
    "SecLabelStmt" => "security_label", "SECURITY LABEL", Ddl;
    "CreateSchemaStmt" => "create_schema", "CREATE SCHEMA", Ddl;
    "CreateSeqStmt" => "create_sequence", "CREATE SEQUENCE", Ddl;
    "AlterSeqStmt" => "alter_sequence", "ALTER SEQUENCE", Ddl;
    "CreateFunctionStmt" => "create_function", "CREATE FUNCTION", Ddl;
    "AlterFunctionStmt" => "alter_function", "ALTER FUNCTION", Ddl;
    "CreateTrigStmt" => "create_trigger", "CREATE TRIGGER", Ddl;
    "CreateEventTrigStmt" => "create_event_trigger", "CREATE EVENT TRIGGER", Ddl;
    "AlterEventTrigStmt" => "alter_event_trigger", "ALTER EVENT TRIGGER", Ddl;
    "RuleStmt" => "create_rule", "CREATE RULE", Ddl;
    "CreateExtensionStmt" => "create_extension", "CREATE EXTENSION", Ddl;
    "AlterExtensionStmt" => "alter_extension", "ALTER EXTENSION", Ddl;
    "AlterExtensionContentsStmt" => "alter_extension", "ALTER EXTENSION", Ddl;
    "CreateDomainStmt" => "create_domain", "CREATE DOMAIN", Ddl;
    "AlterDomainStmt" => "alter_domain", "ALTER DOMAIN", Ddl;
    "CompositeTypeStmt" => "create_type", "CREATE TYPE", Ddl;
    "CreateEnumStmt" => "create_type", "CREATE TYPE", Ddl;
    "CreateRangeStmt" => "create_type", "CREATE TYPE", Ddl;
    "AlterEnumStmt" => "alter_type", "ALTER TYPE", Ddl;
    "AlterTypeStmt" => "alter_type", "ALTER TYPE", Ddl;
    "DefineStmt" => "define", "CREATE", Ddl;
    "CreatePolicyStmt" => "create_policy", "CREATE POLICY", Ddl;
    "AlterPolicyStmt" => "alter_policy", "ALTER POLICY", Ddl;
    "CreatePublicationStmt" => "create_publication", "CREATE PUBLICATION", Ddl;
    "AlterPublicationStmt" => "alter_publication", "ALTER PUBLICATION", Ddl;
    "CreateSubscriptionStmt" => "create_subscription", "CREATE SUBSCRIPTION", Admin;
    "AlterSubscriptionStmt" => "alter_subscription", "ALTER SUBSCRIPTION", Admin;
    "DropSubscriptionStmt" => "drop_subscription", "DROP SUBSCRIPTION", Admin;
    "CreateCastStmt" => "create_cast", "CREATE CAST", Ddl;
    "CreateConversionStmt" => "create_conversion", "CREATE CONVERSION", Ddl;
    "CreateOpClassStmt" => "create_operator_class", "CREATE OPERATOR CLASS", Ddl;
    "CreateOpFamilyStmt" => "create_operator_family", "CREATE OPERATOR FAMILY", Ddl;
    "AlterOpFamilyStmt" => "alter_operator_family", "ALTER OPERATOR FAMILY", Ddl;
    "AlterOperatorStmt" => "alter_operator", "ALTER OPERATOR", Ddl;
    "CreateStatsStmt" => "create_statistics", "CREATE STATISTICS", Ddl;
    "AlterStatsStmt" => "alter_statistics", "ALTER STATISTICS", Ddl;
    "CreateTransformStmt" => "create_transform", "CREATE TRANSFORM", Ddl;
    "CreateAmStmt" => "create_access_method", "CREATE ACCESS METHOD", Ddl;
    "CreatePLangStmt" => "create_language", "CREATE LANGUAGE", Ddl;
    "CreateTableSpaceStmt" => "create_tablespace", "CREATE TABLESPACE", Admin;
    "DropTableSpaceStmt" => "drop_tablespace", "DROP TABLESPACE", Admin;
    "AlterTableSpaceOptionsStmt" => "alter_tablespace", "ALTER TABLESPACE", Admin;
    "CreateFdwStmt" => "create_foreign_data_wrapper", "CREATE FOREIGN DATA WRAPPER", Ddl;
    "AlterFdwStmt" => "alter_foreign_data_wrapper", "ALTER FOREIGN DATA WRAPPER", Ddl;
    "CreateForeignServerStmt" => "create_server", "CREATE SERVER", Ddl;
    "AlterForeignServerStmt" => "alter_server", "ALTER SERVER", Ddl;
    "CreateForeignTableStmt" => "create_foreign_table", "CREATE FOREIGN TABLE", Ddl;
    "ImportForeignSchemaStmt" => "import_foreign_schema", "IMPORT FOREIGN SCHEMA", Ddl;
    "CreateUserMappingStmt" => "create_user_mapping", "CREATE USER MAPPING", Privilege;
    "AlterUserMappingStmt" => "alter_user_mapping", "ALTER USER MAPPING", Privilege;
    "DropUserMappingStmt" => "drop_user_mapping", "DROP USER MAPPING", Privilege;
    "AlterObjectSchemaStmt" => "alter_object_schema", "ALTER", Ddl;
    "AlterObjectDependsStmt" => "alter_object_depends", "ALTER", Ddl;
    "AlterOwnerStmt" => "alter_owner", "ALTER", Privilege;
    "AlterCollationStmt" => "alter_collation", "ALTER COLLATION", Ddl;
    "AlterTSDictionaryStmt" => "alter_text_search", "ALTER TEXT SEARCH DICTIONARY", Ddl;
    "AlterTSConfigurationStmt" => "alter_text_search", "ALTER TEXT SEARCH CONFIGURATION", Ddl;
    "CreatedbStmt" => "create_database", "CREATE DATABASE", Admin;
    "DropdbStmt" => "drop_database", "DROP DATABASE", Admin;
    "AlterDatabaseStmt" => "alter_database", "ALTER DATABASE", Admin;
    "AlterDatabaseSetStmt" => "alter_database", "ALTER DATABASE", Admin;
    "AlterDatabaseRefreshCollStmt" => "alter_database", "ALTER DATABASE", Admin;
    "GrantStmt" => "grant", "GRANT", Privilege;
    "GrantRoleStmt" => "grant_role", "GRANT ROLE", Privilege;
    "AlterDefaultPrivilegesStmt" => "alter_default_privileges", "ALTER DEFAULT PRIVILEGES", Privilege;
    "CreateRoleStmt" => "create_role", "CREATE ROLE", Privilege;
    "AlterRoleStmt" => "alter_role", "ALTER ROLE", Privilege;
    "AlterRoleSetStmt" => "alter_role", "ALTER ROLE", Privilege;
    "DropRoleStmt" => "drop_role", "DROP ROLE", Privilege;
    "ReassignOwnedStmt" => "reassign_owned", "REASSIGN OWNED", Privilege;
    "DropOwnedStmt" => "drop_owned", "DROP OWNED", Privilege;
}

/// Looks up a statement node name.
pub fn lookup(node: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.node == node)
}

# Portcullis default policy.
#
# Decides one statement at a time from `input` (schema: DESIGN.md, version 1)
# and returns `decision` = {action, reasons, mask, approval}.
#
#   * members of data.portcullis_data.read_groups may run read-only statements;
#   * members of write_groups may also run ordinary writes;
#   * UPDATE/DELETE without a row-dependent WHERE, ALTER SYSTEM, COPY ... PROGRAM,
#     role changes, server file access and unparsed statements are denied;
#   * DDL, TRUNCATE, COPY (except for direct_copy_groups), bulk writes, dynamic
#     SQL, procedure calls, privilege and admin statements need approval by
#     approver_groups.
package portcullis

import rego.v1

cfg := data.portcullis_data

stmt := input.statement

user_groups := {g | some g in input.user.groups}

is_reader if count(user_groups & {g | some g in cfg.read_groups}) > 0

is_writer if count(user_groups & {g | some g in cfg.write_groups}) > 0

written := sort([sprintf("%s.%s", [t.schema, t.name]) | some t in stmt.tables; t.access != "read"])

# ---- hard denials ---------------------------------------------------------

deny contains msg if {
	stmt.kind == "unparsed"
	msg := sprintf("statement could not be parsed or is of an unknown kind (%s)", [concat(", ", stmt.flags)])
}

deny contains "ALTER SYSTEM is not allowed through the gateway" if "alter_system" in stmt.flags

deny contains "COPY ... PROGRAM is not allowed through the gateway" if "copy_program" in stmt.flags

deny contains "role and session-authorization changes are not allowed" if "role_change" in stmt.flags

deny contains "server file access is not allowed" if "file_access" in stmt.flags

deny contains msg if {
	"no_where" in stmt.flags
	msg := sprintf("%s without WHERE on %s", [no_where_verb, concat(", ", written)])
}

no_where_verb := upper(stmt.kind) if stmt.kind in {"update", "delete"}

else := "UPDATE/DELETE (inside a CTE, PREPARE or EXPLAIN)"

deny contains "you are not in a group allowed to use this gateway" if {
	not is_reader
	not is_writer
}

deny contains msg if {
	is_reader
	not is_writer
	not stmt.read_only
	count(needs_approval) == 0
	msg := sprintf("read-only access: %s is not a read-only statement", [stmt.kind])
}

# ---- approvals ------------------------------------------------------------

needs_approval contains "DDL" if "ddl" in stmt.flags

needs_approval contains "privilege change" if "privilege" in stmt.flags

needs_approval contains "server administration" if "admin" in stmt.flags

needs_approval contains "server administration function" if "admin_function" in stmt.flags

needs_approval contains "TRUNCATE" if stmt.kind == "truncate"

needs_approval contains "bulk write" if {
	"bulk_write" in stmt.flags
	not stmt.kind in {"update", "delete", "truncate"}
	not direct_copy
}

needs_approval contains "COPY" if {
	stmt.kind == "copy"
	not direct_copy
}

needs_approval contains "dynamic SQL" if "dynamic_sql" in stmt.flags

# A procedure can run anything; its effect cannot be seen from the CALL.
needs_approval contains "procedure call" if "procedure_call" in stmt.flags

direct_copy if {
	stmt.kind == "copy"
	count(user_groups & {g | some g in cfg.direct_copy_groups}) > 0
}

# ---- masks (applied to results; the gateway refuses what it cannot mask) --

masks := [{"table": m.table, "column": m.column, "method": m.method} |
	some m in cfg.masks
	some t in stmt.tables
	sprintf("%s.%s", [t.schema, t.name]) == m.table
	count(user_groups & {g | some g in object.get(m, "except_groups", [])}) == 0
]

# ---- decision -------------------------------------------------------------

default decision := {"action": "deny", "reasons": ["no rule allows this statement"]}

decision := {"action": "deny", "reasons": sort(deny)} if {
	count(deny) > 0
} else := {
	"action": "approve",
	"reasons": [sprintf("%s requires approval by %s", [r, concat(", ", cfg.approver_groups)]) | some r in sort(needs_approval)],
	"approval": {
		"groups": cfg.approver_groups,
		"quorum": 1,
		"mode": cfg.approval_mode,
		"timeout": cfg.approval_timeout,
	},
} if {
	count(needs_approval) > 0
} else := {"action": "allow", "reasons": [], "mask": masks} if {
	stmt.read_only
	is_reader
} else := {"action": "allow", "reasons": [], "mask": masks} if {
	is_writer
}

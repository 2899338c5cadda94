"""Mattermost's built-in roles and their permissions, as a fresh Mattermost server has them.

Data only. A fresh Mattermost database gets its roles from the server's default role table and
then runs its permission migrations over them (emoji permissions for `system_user`,
`use_group_mentions` for every role that may post except guests, the moderated channel
permissions and `create_post` for the admin roles, `upload_file` for every role with
`create_post`, the playbook permissions, ...). The lists below are the result of both, so a client
reading them sees what it would see on a new Mattermost 11 server, Team Edition, unlicensed.

`system_admin` holds every permission that exists (`ALL_PERMISSIONS`), as in Mattermost.
A permission not in `ALL_PERMISSIONS` or `DEPRECATED_PERMISSIONS` cannot be given to a role.
"""

from __future__ import annotations

from dataclasses import dataclass

# Permissions by scope, in the order Mattermost lists them.

SYSTEM_PERMISSIONS = (
    "assign_system_admin_role",
    "manage_roles",
    "manage_system",
    "create_direct_channel",
    "create_group_channel",
    "list_public_teams",
    "join_public_teams",
    "list_private_teams",
    "join_private_teams",
    "edit_other_users",
    "read_other_users_teams",
    "get_public_link",
    "manage_system_wide_oauth",
    "manage_oauth",
    "create_team",
    "list_users_without_team",
    "create_user_access_token",
    "read_user_access_token",
    "revoke_user_access_token",
    "create_bot",
    "assign_bot",
    "read_bots",
    "read_others_bots",
    "manage_bots",
    "manage_others_bots",
    "read_jobs",
    "manage_jobs",
    "promote_guest",
    "demote_to_guest",
    "edit_brand",
    "manage_shared_channels",
    "manage_secure_connections",
    "download_compliance_export_result",
    "create_data_retention_job",
    "manage_data_retention_job",
    "read_data_retention_job",
    "create_compliance_export_job",
    "manage_compliance_export_job",
    "read_compliance_export_job",
    "read_audits",
    "test_site_url",
    "test_elasticsearch",
    "test_s3",
    "reload_config",
    "invalidate_caches",
    "recycle_database_connections",
    "purge_elasticsearch_indexes",
    "test_email",
    "create_elasticsearch_post_indexing_job",
    "manage_elasticsearch_post_indexing_job",
    "create_elasticsearch_post_aggregation_job",
    "manage_elasticsearch_post_aggregation_job",
    "read_elasticsearch_post_indexing_job",
    "read_elasticsearch_post_aggregation_job",
    "create_ldap_sync_job",
    "manage_ldap_sync_job",
    "read_ldap_sync_job",
    "test_ldap",
    "invalidate_email_invite",
    "get_saml_metadata_from_idp",
    "add_saml_public_cert",
    "add_saml_private_cert",
    "add_saml_idp_cert",
    "remove_saml_public_cert",
    "remove_saml_private_cert",
    "remove_saml_idp_cert",
    "get_saml_cert_status",
    "add_ldap_public_cert",
    "add_ldap_private_cert",
    "remove_ldap_public_cert",
    "remove_ldap_private_cert",
    "get_analytics",
    "get_logs",
    "read_license_information",
    "manage_license_information",
    "create_custom_group",
    "manage_outgoing_oauth_connections",
    "manage_own_agent",
    "manage_others_agent",
)

TEAM_PERMISSIONS = (
    "invite_user",
    "add_user_to_team",
    "manage_own_slash_commands",
    "manage_others_slash_commands",
    "create_public_channel",
    "create_private_channel",
    "manage_team_roles",
    "manage_team_access_rules",
    "list_team_channels",
    "join_public_channels",
    "read_public_channel",
    "manage_own_incoming_webhooks",
    "manage_own_outgoing_webhooks",
    "manage_others_incoming_webhooks",
    "manage_others_outgoing_webhooks",
    "bypass_incoming_webhook_channel_lock",
    "create_emojis",
    "delete_emojis",
    "delete_others_emojis",
    "remove_user_from_team",
    "manage_team",
    "import_team",
    "view_team",
    "view_members",
    "invite_guest",
    "playbook_public_create",
    "playbook_private_create",
    "create_wiki",
    "manage_wiki",
    "read_wiki",
    "delete_wiki",
    "admin_wiki",
    "create_page",
    "read_page",
    "edit_page",
    "edit_own_page",
    "delete_own_page",
    "delete_page",
    "comment_page",
)

CHANNEL_PERMISSIONS = (
    "use_slash_commands",
    "manage_public_channel_members",
    "manage_private_channel_members",
    "manage_channel_roles",
    "manage_public_channel_properties",
    "manage_private_channel_properties",
    "manage_public_channel_auto_translation",
    "manage_private_channel_auto_translation",
    "convert_public_channel_to_private",
    "convert_private_channel_to_public",
    "delete_public_channel",
    "delete_private_channel",
    "read_channel",
    "read_channel_content",
    "read_public_channel_groups",
    "read_private_channel_groups",
    "add_reaction",
    "remove_reaction",
    "remove_others_reactions",
    "upload_file",
    "create_post",
    "create_post_public",
    "create_post_ephemeral",
    "read_deleted_posts",
    "edit_post",
    "edit_others_posts",
    "delete_post",
    "delete_others_posts",
    "use_channel_mentions",
    "use_group_mentions",
    "add_bookmark_public_channel",
    "edit_bookmark_public_channel",
    "delete_bookmark_public_channel",
    "order_bookmark_public_channel",
    "add_bookmark_private_channel",
    "edit_bookmark_private_channel",
    "delete_bookmark_private_channel",
    "order_bookmark_private_channel",
    "manage_public_channel_banner",
    "manage_private_channel_banner",
    "manage_channel_access_rules",
    "edit_file_attachment",
)

_SYSCONSOLE_SECTIONS = (
    "about_edition_and_license",
    "billing",
    "reporting_site_statistics",
    "reporting_team_statistics",
    "reporting_server_logs",
    "user_management_users",
    "user_management_groups",
    "user_management_teams",
    "user_management_channels",
    "user_management_permissions",
    "user_management_system_roles",
    "environment_web_server",
    "environment_database",
    "environment_elasticsearch",
    "environment_file_storage",
    "environment_image_proxy",
    "environment_smtp",
    "environment_push_notification_server",
    "environment_high_availability",
    "environment_rate_limiting",
    "environment_logging",
    "environment_session_lengths",
    "environment_performance_monitoring",
    "environment_developer",
    "environment_mobile_security",
    "site_customization",
    "site_localization",
    "site_users_and_teams",
    "site_notifications",
    "site_announcement_banner",
    "site_emoji",
    "site_posts",
    "site_file_sharing_and_downloads",
    "site_public_links",
    "site_notices",
    "authentication_signup",
    "authentication_email",
    "authentication_password",
    "authentication_mfa",
    "authentication_ldap",
    "authentication_saml",
    "authentication_openid",
    "authentication_guest_access",
    "plugins",
    "integrations_integration_management",
    "integrations_bot_accounts",
    "integrations_gif",
    "integrations_cors",
    "compliance_data_retention_policy",
    "compliance_compliance_export",
    "compliance_compliance_monitoring",
    "compliance_custom_terms_of_service",
    "experimental_features",
    "experimental_feature_flags",
    "products_boards",
    "site_ip_filters",
)
SYSCONSOLE_READ_PERMISSIONS = tuple(f"sysconsole_read_{s}" for s in _SYSCONSOLE_SECTIONS)
SYSCONSOLE_WRITE_PERMISSIONS = tuple(f"sysconsole_write_{s}" for s in _SYSCONSOLE_SECTIONS)

GROUP_PERMISSIONS = (
    "manage_custom_group_members",
    "edit_custom_group",
    "delete_custom_group",
    "restore_custom_group",
)

PLAYBOOK_PERMISSIONS = (
    "playbook_public_manage_properties",
    "playbook_public_manage_members",
    "playbook_public_manage_roles",
    "playbook_public_view",
    "playbook_public_make_private",
    "playbook_private_manage_properties",
    "playbook_private_manage_members",
    "playbook_private_manage_roles",
    "playbook_private_view",
    "playbook_private_make_public",
    "run_create",
)

RUN_PERMISSIONS = ("run_manage_properties", "run_manage_members", "run_view")

ALL_PERMISSIONS = (
    *SYSTEM_PERMISSIONS,
    *TEAM_PERMISSIONS,
    *CHANNEL_PERMISSIONS,
    *SYSCONSOLE_READ_PERMISSIONS,
    *SYSCONSOLE_WRITE_PERMISSIONS,
    *GROUP_PERMISSIONS,
    *PLAYBOOK_PERMISSIONS,
    *RUN_PERMISSIONS,
)

# Still accepted in a role (old roles carry them) but granted to no built-in role.
DEPRECATED_PERMISSIONS = (
    "permanent_delete_user",
    "manage_webhooks",
    "manage_others_webhooks",
    "manage_incoming_webhooks",
    "manage_outgoing_webhooks",
    "manage_slash_commands",
    "manage_emojis",
    "manage_others_emojis",
    "sysconsole_read_authentication",
    "sysconsole_write_authentication",
    "sysconsole_read_site",
    "sysconsole_write_site",
    "sysconsole_read_environment",
    "sysconsole_write_environment",
    "sysconsole_read_reporting",
    "sysconsole_write_reporting",
    "sysconsole_read_about",
    "sysconsole_write_about",
    "sysconsole_read_experimental",
    "sysconsole_write_experimental",
    "sysconsole_read_integrations",
    "sysconsole_write_integrations",
    "sysconsole_read_compliance",
    "sysconsole_write_compliance",
    "purge_bleve_indexes",
    "create_post_bleve_indexes_job",
    "manage_post_bleve_indexes_job",
    "sysconsole_read_experimental_bleve",
    "sysconsole_write_experimental_bleve",
)

KNOWN_PERMISSIONS = frozenset(ALL_PERMISSIONS) | frozenset(DEPRECATED_PERMISSIONS)


@dataclass(frozen=True, slots=True)
class BuiltInRole:
    name: str
    display_name: str
    description: str
    permissions: tuple[str, ...]
    scheme_managed: bool


def _role(name: str, key: str, permissions: tuple[str, ...], scheme_managed: bool) -> BuiltInRole:
    # Built-in roles carry translation keys as names; the apps translate them.
    return BuiltInRole(
        name,
        f"authentication.roles.{key}.name",
        f"authentication.roles.{key}.description",
        permissions,
        scheme_managed,
    )


_BOOKMARKS = (
    "add_bookmark_public_channel",
    "edit_bookmark_public_channel",
    "delete_bookmark_public_channel",
    "order_bookmark_public_channel",
    "add_bookmark_private_channel",
    "edit_bookmark_private_channel",
    "delete_bookmark_private_channel",
    "order_bookmark_private_channel",
)
_PAGES = ("read_page", "create_page", "edit_page", "delete_own_page")
# Added to the admin roles by the channel moderation migration (channel members have them).
_MODERATED = (
    "create_post",
    "add_reaction",
    "remove_reaction",
    "manage_public_channel_members",
    "manage_private_channel_members",
    "use_channel_mentions",
)
_ACCESS_TOKENS = ("create_user_access_token", "read_user_access_token", "revoke_user_access_token")

_SYSTEM_USER_MANAGER = (
    "sysconsole_read_user_management_groups",
    "sysconsole_read_user_management_teams",
    "sysconsole_read_user_management_channels",
    "sysconsole_read_user_management_permissions",
    "sysconsole_write_user_management_groups",
    "sysconsole_write_user_management_teams",
    "sysconsole_write_user_management_channels",
    "sysconsole_read_authentication_signup",
    "sysconsole_read_authentication_email",
    "sysconsole_read_authentication_password",
    "sysconsole_read_authentication_mfa",
    "sysconsole_read_authentication_ldap",
    "sysconsole_read_authentication_saml",
    "sysconsole_read_authentication_openid",
    "sysconsole_read_authentication_guest_access",
)

_READ_ONLY_ADMIN_SECTIONS = (
    "about_edition_and_license",
    "reporting_site_statistics",
    "reporting_team_statistics",
    "reporting_server_logs",
    "user_management_users",
    "user_management_groups",
    "user_management_teams",
    "user_management_channels",
    "user_management_permissions",
    # environment_mobile_security included: a later migration gives it to this role.
    *(s for s in _SYSCONSOLE_SECTIONS if s.startswith("environment_")),
    *(s for s in _SYSCONSOLE_SECTIONS if s.startswith("site_") and s != "site_ip_filters"),
    *(s for s in _SYSCONSOLE_SECTIONS if s.startswith("authentication_")),
    "plugins",
    "integrations_integration_management",
    "integrations_bot_accounts",
    "integrations_gif",
    "integrations_cors",
    "compliance_data_retention_policy",
    "compliance_compliance_export",
    "compliance_compliance_monitoring",
    "compliance_custom_terms_of_service",
    "experimental_features",
    "experimental_feature_flags",
    "products_boards",
)

_MANAGER_READ = tuple(
    s
    for s in _READ_ONLY_ADMIN_SECTIONS
    if s not in {"user_management_users", "environment_mobile_security"}
    and not s.startswith("compliance_")
    and not s.startswith("experimental_")
)
_MANAGER_WRITE = (
    "user_management_groups",
    "user_management_teams",
    "user_management_channels",
    "user_management_permissions",
    *(s for s in _SYSCONSOLE_SECTIONS if s.startswith("environment_") and "mobile" not in s),
    *(s for s in _SYSCONSOLE_SECTIONS if s.startswith("site_") and s != "site_ip_filters"),
    "integrations_integration_management",
    "integrations_bot_accounts",
    "integrations_gif",
    "integrations_cors",
    "products_boards",
)

# Permissions a console section brings along ("ancillary" permissions in Mattermost).
_ANCILLARY: dict[str, tuple[str, ...]] = {
    "sysconsole_read_about_edition_and_license": ("read_license_information",),
    "sysconsole_write_about_edition_and_license": ("manage_license_information",),
    "sysconsole_read_user_management_channels": (
        "read_public_channel",
        "read_channel",
        "read_public_channel_groups",
        "read_private_channel_groups",
    ),
    "sysconsole_read_user_management_users": ("read_other_users_teams",),
    "sysconsole_read_user_management_teams": (
        "list_private_teams",
        "list_public_teams",
        "view_team",
    ),
    "sysconsole_read_environment_elasticsearch": (
        "read_elasticsearch_post_indexing_job",
        "read_elasticsearch_post_aggregation_job",
    ),
    "sysconsole_write_environment_web_server": (
        "test_site_url",
        "reload_config",
        "invalidate_caches",
    ),
    "sysconsole_write_environment_database": ("recycle_database_connections",),
    "sysconsole_write_environment_elasticsearch": (
        "test_elasticsearch",
        "create_elasticsearch_post_indexing_job",
        "manage_elasticsearch_post_indexing_job",
        "create_elasticsearch_post_aggregation_job",
        "manage_elasticsearch_post_aggregation_job",
        "purge_elasticsearch_indexes",
    ),
    "sysconsole_write_environment_file_storage": ("test_s3",),
    "sysconsole_write_environment_smtp": ("test_email",),
    "sysconsole_read_reporting_server_logs": ("get_logs",),
    "sysconsole_read_reporting_site_statistics": ("get_analytics",),
    "sysconsole_read_reporting_team_statistics": ("get_analytics",),
    "sysconsole_write_user_management_users": (
        "edit_other_users",
        "demote_to_guest",
        "promote_guest",
    ),
    "sysconsole_write_user_management_channels": (
        "manage_public_channel_properties",
        "manage_private_channel_properties",
        "manage_public_channel_auto_translation",
        "manage_private_channel_auto_translation",
        "manage_private_channel_members",
        "manage_public_channel_members",
        "delete_private_channel",
        "delete_public_channel",
        "manage_channel_roles",
        "convert_public_channel_to_private",
        "convert_private_channel_to_public",
    ),
    "sysconsole_write_user_management_teams": (
        "manage_team",
        "manage_team_roles",
        "remove_user_from_team",
        "join_private_teams",
        "join_public_teams",
        "add_user_to_team",
    ),
    "sysconsole_write_user_management_groups": (
        "manage_private_channel_members",
        "manage_public_channel_members",
        "convert_public_channel_to_private",
        "convert_private_channel_to_public",
    ),
    "sysconsole_write_site_customization": ("edit_brand",),
    "sysconsole_write_compliance_data_retention_policy": (
        "create_data_retention_job",
        "manage_data_retention_job",
    ),
    "sysconsole_read_compliance_data_retention_policy": ("read_data_retention_job",),
    "sysconsole_write_compliance_compliance_export": (
        "create_compliance_export_job",
        "manage_compliance_export_job",
        "download_compliance_export_result",
    ),
    "sysconsole_read_compliance_compliance_export": (
        "read_compliance_export_job",
        "download_compliance_export_result",
    ),
    "sysconsole_read_compliance_compliance_monitoring": ("read_audits",),
    "sysconsole_write_authentication_ldap": (
        "create_ldap_sync_job",
        "manage_ldap_sync_job",
        "add_ldap_public_cert",
        "remove_ldap_public_cert",
        "add_ldap_private_cert",
        "remove_ldap_private_cert",
    ),
    "sysconsole_read_authentication_ldap": ("test_ldap", "read_ldap_sync_job"),
    "sysconsole_write_authentication_email": ("invalidate_email_invite",),
    "sysconsole_write_authentication_saml": (
        "get_saml_metadata_from_idp",
        "add_saml_public_cert",
        "add_saml_private_cert",
        "add_saml_idp_cert",
        "remove_saml_public_cert",
        "remove_saml_private_cert",
        "remove_saml_idp_cert",
        "get_saml_cert_status",
    ),
}


def with_ancillary(permissions: tuple[str, ...]) -> tuple[str, ...]:
    """`permissions` plus what their console sections bring along, without duplicates."""
    result = list(dict.fromkeys(permissions))
    for permission in permissions:
        for extra in _ANCILLARY.get(permission, ()):
            if extra not in result:
                result.append(extra)
    return tuple(result)


BUILT_IN_ROLES: dict[str, BuiltInRole] = {
    r.name: r
    for r in (
        _role(
            "system_admin",
            "global_admin",
            ALL_PERMISSIONS,
            True,
        ),
        _role(
            "system_user",
            "global_user",
            (
                "list_public_teams",
                "join_public_teams",
                "create_direct_channel",
                "create_group_channel",
                "view_members",
                "create_team",
                "create_custom_group",
                "edit_custom_group",
                "delete_custom_group",
                "restore_custom_group",
                "manage_custom_group_members",
                "manage_own_agent",
                "create_emojis",
                "delete_emojis",
            ),
            True,
        ),
        _role(
            "system_guest", "global_guest", ("create_direct_channel", "create_group_channel"), True
        ),
        _role(
            "system_post_all",
            "system_post_all",
            ("create_post", "use_channel_mentions", "use_group_mentions", "upload_file"),
            False,
        ),
        _role(
            "system_post_all_public",
            "system_post_all_public",
            ("create_post_public", "use_channel_mentions", "use_group_mentions"),
            False,
        ),
        _role("system_user_access_token", "system_user_access_token", _ACCESS_TOKENS, False),
        _role(
            "system_user_manager",
            "system_user_manager",
            with_ancillary(_SYSTEM_USER_MANAGER),
            False,
        ),
        _role(
            "system_read_only_admin",
            "system_read_only_admin",
            with_ancillary(tuple(f"sysconsole_read_{s}" for s in _READ_ONLY_ADMIN_SECTIONS)),
            False,
        ),
        _role(
            "system_manager",
            "system_manager",
            with_ancillary(
                (
                    *(f"sysconsole_read_{s}" for s in _MANAGER_READ),
                    *(f"sysconsole_write_{s}" for s in _MANAGER_WRITE),
                    "manage_outgoing_oauth_connections",
                )
            ),
            False,
        ),
        _role(
            "system_custom_group_admin",
            "system_custom_group_admin",
            (
                "create_custom_group",
                "edit_custom_group",
                "delete_custom_group",
                "restore_custom_group",
                "manage_custom_group_members",
            ),
            False,
        ),
        _role(
            "system_shared_channel_manager",
            "system_shared_channel_manager",
            ("manage_shared_channels",),
            False,
        ),
        _role("team_guest", "team_guest", ("view_team",), True),
        _role(
            "team_user",
            "team_user",
            (
                "list_team_channels",
                "join_public_channels",
                "read_public_channel",
                "view_team",
                "create_public_channel",
                "create_private_channel",
                "invite_user",
                "add_user_to_team",
                "create_wiki",
                *_PAGES,
                "playbook_public_create",
                "playbook_private_create",
            ),
            True,
        ),
        _role(
            "team_admin",
            "team_admin",
            (
                "remove_user_from_team",
                "manage_team",
                "import_team",
                "manage_team_roles",
                "manage_team_access_rules",
                "manage_channel_roles",
                "manage_own_incoming_webhooks",
                "manage_others_incoming_webhooks",
                "manage_own_outgoing_webhooks",
                "manage_others_outgoing_webhooks",
                "manage_own_slash_commands",
                "manage_others_slash_commands",
                "bypass_incoming_webhook_channel_lock",
                "convert_public_channel_to_private",
                "convert_private_channel_to_public",
                "delete_post",
                "delete_others_posts",
                *_BOOKMARKS,
                *_PAGES,
                "delete_page",
                "manage_public_channel_banner",
                "manage_private_channel_banner",
                "manage_channel_access_rules",
                "create_wiki",
                "manage_wiki",
                *_MODERATED,
                "use_group_mentions",
                "read_public_channel_groups",
                "read_private_channel_groups",
                "playbook_public_manage_roles",
                "playbook_private_manage_roles",
                "upload_file",
                "manage_public_channel_auto_translation",
                "manage_private_channel_auto_translation",
            ),
            True,
        ),
        _role(
            "team_post_all",
            "team_post_all",
            ("create_post", "use_channel_mentions", "use_group_mentions", "upload_file"),
            False,
        ),
        _role(
            "team_post_all_public",
            "team_post_all_public",
            ("create_post_public", "use_channel_mentions", "use_group_mentions"),
            False,
        ),
        _role(
            "channel_guest",
            "channel_guest",
            (
                "read_channel",
                "read_channel_content",
                "add_reaction",
                "remove_reaction",
                "upload_file",
                "edit_post",
                "create_post",
                "use_channel_mentions",
                "read_page",
                "edit_file_attachment",
            ),
            True,
        ),
        _role(
            "channel_user",
            "channel_user",
            (
                "read_channel",
                "read_channel_content",
                "add_reaction",
                "remove_reaction",
                "manage_public_channel_members",
                "upload_file",
                "get_public_link",
                "create_post",
                "use_channel_mentions",
                "manage_public_channel_properties",
                "delete_public_channel",
                "manage_private_channel_properties",
                "delete_private_channel",
                "manage_private_channel_members",
                "delete_post",
                "edit_post",
                "edit_file_attachment",
                *_BOOKMARKS,
                *_PAGES,
                "use_group_mentions",
                "read_public_channel_groups",
                "read_private_channel_groups",
            ),
            True,
        ),
        _role(
            "channel_admin",
            "channel_admin",
            (
                "manage_channel_roles",
                "use_group_mentions",
                *_BOOKMARKS,
                *_PAGES,
                "delete_page",
                "manage_public_channel_banner",
                "manage_private_channel_banner",
                "manage_channel_access_rules",
                "manage_public_channel_auto_translation",
                "manage_private_channel_auto_translation",
                *_MODERATED,
                "read_public_channel_groups",
                "read_private_channel_groups",
                "upload_file",
            ),
            True,
        ),
        _role("custom_group_user", "custom_group_user", (), False),
        _role(
            "playbook_admin",
            "playbook_admin",
            (
                "playbook_public_manage_members",
                "playbook_public_manage_roles",
                "playbook_public_manage_properties",
                "playbook_private_manage_members",
                "playbook_private_manage_roles",
                "playbook_private_manage_properties",
                "playbook_public_make_private",
            ),
            True,
        ),
        _role(
            "playbook_member",
            "playbook_member",
            (
                "playbook_public_view",
                "playbook_public_manage_members",
                "playbook_public_manage_properties",
                "playbook_private_view",
                "playbook_private_manage_members",
                "playbook_private_manage_properties",
                "run_create",
            ),
            True,
        ),
        _role("run_admin", "run_admin", ("run_manage_members", "run_manage_properties"), True),
        _role("run_member", "run_member", ("run_view",), True),
    )
}

GUEST_ROLES = frozenset({"system_guest", "team_guest", "channel_guest"})
# Patching these needs manage_system (the others need the console's permissions section).
PROTECTED_SYSTEM_ROLES = frozenset(
    {
        "system_admin",
        "system_user_manager",
        "system_read_only_admin",
        "system_manager",
        "system_shared_channel_manager",
    }
)
# Roles the console's "permissions" section edits; every other role needs "system roles".
SCHEME_ROLES = frozenset(
    {
        "team_admin",
        "channel_admin",
        "system_user",
        "team_user",
        "channel_user",
        "system_guest",
        "team_guest",
        "channel_guest",
        "playbook_admin",
        "playbook_member",
        "run_admin",
        "run_member",
    }
)
# No role patch may add or remove these.
NOT_PATCHABLE_PERMISSIONS = frozenset(
    {
        "sysconsole_write_user_management_system_roles",
        "sysconsole_read_user_management_system_roles",
        "manage_roles",
    }
)

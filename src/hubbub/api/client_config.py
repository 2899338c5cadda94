"""`GET /config/client?format=old`: the configuration the apps read at start-up.

Every key of the 11.x web app's `ClientConfig` type is present, all values strings as Mattermost
sends them (the apps compare with `=== 'true'`). Settings hubbub implements come from its
configuration; the rest carry Mattermost's defaults for an unlicensed server, except where a
default would switch on a feature hubbub does not serve yet: then the value turns it off, so the
apps do not call endpoints that are not there (each such key is marked "not served").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub import MATTERMOST_VERSION, __version__
from hubbub.api.http import JSONResponse
from hubbub.config import Settings


def _bool(value: bool) -> str:
    return "true" if value else "false"


# Values that do not depend on hubbub's settings.
_FIXED: dict[str, str] = {
    "AboutLink": "https://mattermost.com/pl/about-mattermost",
    "AllowBannerDismissal": "false",
    "AllowCustomThemes": "true",
    "AllowDownloadLogs": "false",  # not served: no log download
    "AllowPersistentNotifications": "false",  # not served: message priority
    "AllowPersistentNotificationsForGuests": "false",
    "AllowedThemes": "",
    "AndroidAppDownloadLink": "https://mattermost.com/pl/android-app/",
    "AndroidLatestVersion": "",
    "AndroidMinVersion": "",
    "AppDownloadLink": "https://mattermost.com/pl/download-apps",
    "AppsPluginEnabled": "false",
    "AsymmetricSigningPublicKey": "",
    "AutoTranslationLanguages": "",
    "AvailableLocales": "",
    "BannerColor": "",
    "BannerText": "",
    "BannerTextColor": "",
    "BuildDate": "",
    "BuildEnterpriseReady": "false",
    "BuildHashEnterprise": "none",
    "BurnOnReadDurationSeconds": "0",
    "BurnOnReadMaximumTimeToLiveSeconds": "0",
    "CWSMock": "false",
    "CWSURL": "https://customers.mattermost.com",
    "ContentFlaggingEnabled": "false",
    "CustomBrandText": "",
    "CustomDescriptionText": "",
    "CustomTermsOfServiceId": "",
    "CustomTermsOfServiceReAcceptancePeriod": "365",
    "CustomUrlSchemes": "",
    "DataRetentionEnableFileDeletion": "false",
    "DataRetentionEnableMessageDeletion": "false",
    "DataRetentionFileRetentionHours": "0",
    "DataRetentionMessageRetentionHours": "0",
    "DefaultClientLocale": "en",
    "DefaultTheme": "",
    "DelayChannelAutocomplete": "false",
    "DeleteAccountLink": "",
    "DiagnosticId": "",
    "DiagnosticsEnabled": "false",
    "DisableAppBar": "false",
    "DisableRefetchingOnBrowserFocus": "false",
    "DisableWakeUpReconnectHandler": "false",
    "EmailLoginButtonBorderColor": "#2389D7",
    "EmailLoginButtonColor": "#0000",
    "EmailLoginButtonTextColor": "#2389D7",
    "EmailNotificationContentsType": "full",
    "EnableAskCommunityLink": "true",
    "EnableAttributeBasedAccessControl": "false",
    "EnableAutoTranslation": "false",
    "EnableBanner": "false",
    "EnableBurnOnRead": "false",
    "EnableChannelCategorySorting": "false",
    "EnableChannelViewedMessages": "true",
    "EnableClientPerformanceDebugging": "false",
    "EnableCluster": "false",  # a licensed feature in Mattermost, so false as unlicensed
    "EnableCommands": "false",  # not served: slash commands
    "EnableCompliance": "false",
    "EnableComplianceExport": "false",
    "EnableConfirmNotificationsToChannel": "true",
    "EnableCrossTeamSearch": "false",
    "EnableCustomBrand": "false",
    "EnableCustomGroups": "false",
    "EnableCustomTermsOfService": "false",
    "EnableCustomUserStatuses": "false",  # not served: custom statuses
    "EnableDesktopLandingPage": "true",
    "EnableDiagnostics": "false",
    "EnableEmailBatching": "false",
    "EnableEmailInvitations": "false",
    "EnableEmojiPicker": "true",
    "EnableExperimentalLocales": "false",
    "EnableFile": "false",
    "EnableGifPicker": "false",
    "EnableGuestAccounts": "false",
    "EnableGuestMagicLink": "false",
    "EnableIncomingWebhooks": "false",  # not served: webhooks
    "EnableInlineLatex": "true",
    "EnableJoinLeaveMessageByDefault": "true",
    "EnableLastActiveTime": "true",
    "EnableLatex": "false",
    "EnableLdap": "false",
    "EnableLinkPreviews": "false",  # not served: link metadata
    "EnableMarketplace": "false",
    "EnableMetrics": "false",
    "EnableMobileFileDownload": "true",
    "EnableMobileFileUpload": "true",
    "EnableOAuthServiceProvider": "false",
    "EnableOnboardingFlow": "false",  # not served: the first-admin onboarding calls
    "EnableOutgoingOAuthConnections": "false",
    "EnableOutgoingWebhooks": "false",
    "EnablePostIconOverride": "false",
    "EnablePostUsernameOverride": "false",
    "EnablePreviewModeBanner": "false",
    "EnablePublicLink": "false",
    "EnableReliableWebSockets": "true",
    "EnableSVGs": "false",
    "EnableSaml": "false",
    "EnableSignInWithEmail": "true",
    "EnableSignInWithUsername": "true",
    "EnableSignUpWithEmail": "true",
    "EnableSignUpWithGitLab": "false",
    "EnableSignUpWithGoogle": "false",
    "EnableSignUpWithOffice365": "false",
    "EnableSignUpWithOpenId": "false",
    "EnableTesting": "false",
    "EnableThemeSelection": "true",
    "EnableTimedDND": "false",
    "EnableTutorial": "true",
    "EnableUserDeactivation": "false",
    "EnableUserManagedAttributes": "false",
    "EnableUserStatuses": "true",
    "EnableUserTypingMessages": "true",
    "ExperimentalEnableAuthenticationTransfer": "true",
    "ExperimentalEnableAutomaticReplies": "false",
    "ExperimentalEnableDefaultChannelLeaveJoinMessages": "true",
    "ExperimentalEnablePostMetadata": "true",
    "ExperimentalGroupUnreadChannels": "disabled",
    "ExperimentalPrimaryTeam": "",
    "ExperimentalRemoteClusterService": "false",
    "ExperimentalSharedChannels": "false",
    "FeatureFlagAppsEnabled": "false",
    "FeatureFlagAttributeBasedAccessControl": "false",
    "FeatureFlagCallsEnabled": "false",
    "FeatureFlagChannelPermissionPolicies": "false",
    "FeatureFlagClassificationMarkings": "false",
    "FeatureFlagContentFlagging": "false",
    "FeatureFlagCustomProfileAttributes": "false",
    "FeatureFlagManagedChannelCategories": "false",
    "FeatureFlagPermissionPolicies": "false",
    "FeatureFlagPolicySimulation": "false",
    "FeatureFlagPropertyFieldRank": "false",
    "FeatureFlagSessionAttributes": "false",
    "FeatureFlagTeamMembershipAccessControl": "false",
    "FileLevel": "INFO",
    "ForgotPasswordLink": "",
    "GiphySdkKey": "",
    "GitLabButtonColor": "",
    "GitLabButtonText": "",
    "GoogleDeveloperKey": "",
    "GuestAccountsEnforceMultifactorAuthentication": "false",
    "HasImageProxy": "false",
    "HelpLink": "https://mattermost.com/pl/help/",
    "HideGuestTags": "false",
    "InstallationDate": "",
    "IosAppDownloadLink": "https://mattermost.com/pl/ios-app/",
    "IosLatestVersion": "",
    "IosMinVersion": "",
    "IsDefaultMarketplace": "true",
    "IsFipsEnabled": "false",
    "LdapFirstNameAttributeSet": "false",
    "LdapLastNameAttributeSet": "false",
    "LdapLoginButtonBorderColor": "",
    "LdapLoginButtonColor": "",
    "LdapLoginButtonTextColor": "",
    "LdapLoginFieldName": "",
    "LdapNicknameAttributeSet": "false",
    "LdapPictureAttributeSet": "false",
    "LdapPositionAttributeSet": "false",
    "LockTeammateNameDisplay": "false",
    "ManagedResourcePaths": "",
    "MaxNotificationsPerChannel": "1000",
    "MaximumPersonalAccessTokenLifetimeDays": "0",
    "MinimumHashtagLength": "3",
    "OpenIdButtonColor": "",
    "OpenIdButtonText": "",
    "PersistentNotificationIntervalMinutes": "5",
    "PersistentNotificationMaxRecipients": "5",
    "PluginsEnabled": "true",  # served: GET /plugins/webapp answers an empty list
    "PostAcknowledgements": "false",
    "PostEditTimeLimit": "-1",
    "PostPriority": "false",  # not served: message priority
    "PrivacyPolicyLink": "https://mattermost.com/pl/privacy-policy/",
    "ReportAProblemLink": "https://mattermost.com/pl/report-a-bug",
    "ReportAProblemMail": "",
    "ReportAProblemType": "default",
    "RequireEmailVerification": "false",
    "RestrictDMAndGMAutotranslation": "false",
    "RestrictDirectMessage": "any",
    "RunJobs": "true",
    "SamlFirstNameAttributeSet": "false",
    "SamlLastNameAttributeSet": "false",
    "SamlLoginButtonBorderColor": "",
    "SamlLoginButtonColor": "",
    "SamlLoginButtonText": "",
    "SamlLoginButtonTextColor": "",
    "SamlNicknameAttributeSet": "false",
    "SamlPositionAttributeSet": "false",
    "ScheduledPosts": "false",
    "SchemaVersion": "",
    "SendEmailNotifications": "false",  # hubbub sends no email
    "SendPushNotifications": "false",  # nor push notifications
    "ServiceEnvironment": "production",
    "ShowEmailAddress": "true",
    "ShowFullName": "true",
    "SupportEmail": "",
    "TeammateNameDisplay": "username",
    "TelemetryId": "",
    "TermsOfServiceLink": "https://mattermost.com/pl/terms-of-use/",
    "UniqueEmojiReactionLimitPerPost": "50",
    "UpgradedFromTE": "false",
    "UseAnonymousURLs": "false",
    "UsersStatusAndProfileFetchingPollIntervalMilliseconds": "3000",
    "WebsocketPort": "80",
    "WebsocketSecurePort": "443",
    "WebsocketURL": "",
    "WranglerAllowedEmailDomain": "",
    "WranglerMoveThreadFromDirectMessageChannelEnable": "false",
    "WranglerMoveThreadFromGroupMessageChannelEnable": "false",
    "WranglerMoveThreadFromPrivateChannelEnable": "false",
    "WranglerMoveThreadMaxCount": "100",
    "WranglerPermittedWranglerRoles": "",
    "YoutubeReferrerPolicy": "false",
}


def client_config(settings: Settings, config_hash: str, no_accounts: bool) -> dict[str, str]:
    """The whole client configuration for `settings` (every value a string)."""
    s = settings
    return {
        **_FIXED,
        "Version": MATTERMOST_VERSION,
        "BuildNumber": __version__,
        "BuildHash": "hubbub",
        "SiteName": s.TeamSettings.SiteName,
        "SiteURL": s.ServiceSettings.SiteURL.rstrip("/"),
        "EnableOpenServer": _bool(s.TeamSettings.EnableOpenServer),
        "EnableUserCreation": _bool(s.TeamSettings.EnableUserCreation),
        "EnableUserAccessTokens": _bool(s.ServiceSettings.EnableUserAccessTokens),
        "EnableBotAccountCreation": _bool(s.ServiceSettings.EnableBotAccountCreation),
        "EnableDeveloper": _bool(s.ServiceSettings.EnableDeveloper),
        "EnableFileAttachments": _bool(s.FileSettings.EnableFileAttachments),
        "MaxFileSize": str(s.FileSettings.MaxFileSize),
        "MaxPostSize": str(s.ServiceSettings.MaxPostSize),
        "PasswordMinimumLength": str(s.PasswordSettings.MinimumLength),
        "PasswordRequireLowercase": _bool(s.PasswordSettings.Lowercase),
        "PasswordRequireUppercase": _bool(s.PasswordSettings.Uppercase),
        "PasswordRequireNumber": _bool(s.PasswordSettings.Number),
        "PasswordRequireSymbol": _bool(s.PasswordSettings.Symbol),
        # No mail: a reset link comes from the operator (`hubbub user reset-token`).
        "PasswordEnableForgotLink": "false",
        "EnableMultifactorAuthentication": _bool(s.ServiceSettings.EnableMultifactorAuthentication),
        "EnforceMultifactorAuthentication": _bool(
            s.ServiceSettings.EnableMultifactorAuthentication
            and s.ServiceSettings.EnforceMultifactorAuthentication
        ),
        "TimeBetweenUserTypingUpdatesMilliseconds": str(
            s.ServiceSettings.TimeBetweenUserTypingUpdatesMilliseconds
        ),
        "SQLDriverName": s.SqlSettings.DriverName,
        # Performance reports are counted in the metrics, so only asked for when those are on.
        "EnableClientMetrics": _bool(s.MetricsSettings.Enable),
        "EnableCustomEmoji": _bool(s.ServiceSettings.EnableCustomEmoji),
        "AllowSyncedDrafts": _bool(s.ServiceSettings.AllowSyncedDrafts),
        "CollapsedThreads": s.ServiceSettings.CollapsedThreads,
        "NoAccounts": _bool(no_accounts),
        # The web app sends `presence` actions only with this flag (hubbub/realtime/scope.py).
        "FeatureFlagWebSocketEventScope": _bool(s.FeatureFlags.WebSocketEventScope),
        # hubbub's own additions.
        "IsClusterEnabled": _bool(s.ClusterSettings.Enable),
        "ConfigHash": config_hash,
    }


class ClientConfigRoutes:
    def __init__(
        self,
        settings: Settings,
        config_hash: str,
        count_users: Callable[[], Awaitable[int]],
    ) -> None:
        self.settings = settings
        self.config_hash = config_hash
        self.count_users = count_users

    def routes(self) -> list[BaseRoute]:
        return [Route("/config/client", self.get, methods=["GET"])]

    async def get(self, request: Request) -> Response:
        # Only the old format exists (C4 11.x still asks for it); Mattermost answers 501 for
        # any other `format`, but every client sends `format=old`.
        no_accounts = await self.count_users() == 0
        return JSONResponse(client_config(self.settings, self.config_hash, no_accounts))

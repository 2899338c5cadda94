'use strict';
// Runs the Mattermost web app's start-up through its own data layer (mattermost-redux 11.9.0
// and its Client4) against a hubbub server, then prints one JSON object describing the
// resulting Redux store: what the web app would render from. Used by
// tests/webapp/test_webapp_data_layer.py, which makes the assertions.
//
// Environment: HUBBUB_URL, LOGIN_ID, PASSWORD, TEAM_ID, CHANNEL_ID (a public channel the user is
// in), PRIVATE_ID (a private one), DM_ID (a DM of the user's), BOB_LOGIN_ID (another member of
// the public channel, who replies to the user's thread).
//
// Then the features the client config switches on: collapsed reply threads (counts, the thread
// list, a reply arriving over the websocket into the store, marking it read), synced drafts (saved
// on one device, the second device's websocket receives it), custom emoji (created and fetched
// into `entities.emojis`) and avatars (the image URL the app puts in <img>). Last, the channel's
// posts: loaded, a picture uploaded and posted, reactions (a system and a custom emoji) through
// the data layer's actions; another person's post with a file, edit, reaction, its removal and
// the post's deletion reaching the store over the websocket. Node 20 needs
// `--experimental-websocket` for the WebSocket the client library uses.
//
// The order follows the web app (docs/api/webapp-coverage.md): login, loadMe (config, license,
// me, preferences, teams, team members, team unreads, server limits), the roles of the user and
// their memberships, the plugins list, all channels and channel members, the team's channels and
// members, the sidebar categories; then a user's first actions: save a preference, favorite a
// channel, make a category. The web app itself loads in a browser; here the session is a token
// instead of the cookie, which is the only difference in the requests.

const {Client4} = require('mattermost-redux/client');
const {Client4: Client4Class, WebSocketClient} = require('@mattermost/client');
const configureStore = require('mattermost-redux/store').default;
const {setServerVersion} = require('mattermost-redux/actions/general');
const {loadRolesIfNeeded} = require('mattermost-redux/actions/roles');
const {savePreferences, getMyPreferences} = require('mattermost-redux/actions/preferences');
const {
    fetchAllMyTeamsChannels,
    fetchAllMyChannelMembers,
    fetchChannelsAndMembers,
    favoriteChannel,
} = require('mattermost-redux/actions/channels');
const {fetchMyCategories, createCategory} = require('mattermost-redux/actions/channel_categories');
const {haveIChannelPermission, haveITeamPermission} = require('mattermost-redux/selectors/entities/roles');
const {haveISystemPermission} = require('mattermost-redux/selectors/entities/roles_helpers');
const {isCollapsedThreadsEnabled} = require('mattermost-redux/selectors/entities/preferences');
const {selectTeam} = require('mattermost-redux/actions/teams');
const {
    getThreadCounts,
    getThreadsForCurrentTeam,
    getThread,
    handleThreadArrived,
    updateThreadRead,
} = require('mattermost-redux/actions/threads');
const {createCustomEmoji, getCustomEmojis} = require('mattermost-redux/actions/emojis');
const {
    addReaction,
    createPost,
    getPostThread,
    getPosts,
    getPostsSince,
    getPostsUnread,
    postDeleted,
    receivedNewPost,
    receivedPost,
} = require('mattermost-redux/actions/posts');
const {getFilesForPost} = require('mattermost-redux/actions/files');
const {getChannelStats, markChannelAsViewedOnServer} = require('mattermost-redux/actions/channels');
const {
    getProfilesByIds,
    getProfilesInGroupChannels,
    getStatusesByIds,
    loadMe,
} = require('mattermost-redux/actions/users');
const {FileTypes, PostTypes} = require('mattermost-redux/action_types');

// The client library closes with a CloseEvent, which Node 20 does not define.
if (typeof globalThis.CloseEvent === 'undefined') {
    globalThis.CloseEvent = class CloseEvent extends Event {
        constructor(type, init = {}) {
            super(type);
            this.code = init.code;
            this.reason = init.reason;
            this.wasClean = init.wasClean;
        }
    };
}

const env = (name) => {
    const value = process.env[name];
    if (!value) {
        throw new Error(`${name} is required`);
    }
    return value;
};

const url = env('HUBBUB_URL');
const teamId = env('TEAM_ID');
const channelId = env('CHANNEL_ID');
const privateId = env('PRIVATE_ID');
const dmId = env('DM_ID');

// Every request the data layer makes, with its outcome, so a failing call is named in the test.
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
    const response = await realFetch(input, init);
    const path = String(input).replace(url, '');
    requests.push({method: (init.method || 'GET').toUpperCase(), path, status: response.status});
    return response;
};

// The roles of everything the user is a member of, as the web app gathers them.
function roleNames(state) {
    const names = new Set(state.entities.users.profiles[state.entities.users.currentUserId].roles.split(' '));
    for (const member of Object.values(state.entities.teams.myMembers)) {
        member.roles.split(' ').forEach((r) => names.add(r));
    }
    for (const member of Object.values(state.entities.channels.myMembers)) {
        member.roles.split(' ').forEach((r) => names.add(r));
    }
    names.delete('');
    return [...names];
}

async function startUp(store, loginId, password) {
    const {dispatch, getState} = store;
    await Client4.login(loginId, password);

    // The web app learns the server version from X-Version-Id and stores it before loading roles.
    dispatch(setServerVersion(Client4.getServerVersion()));
    const me = await dispatch(loadMe());
    if (me.error) {
        throw new Error(`loadMe failed: ${JSON.stringify(me.error)}`);
    }
    const plugins = await Client4.getWebappPlugins();
    await dispatch(fetchAllMyTeamsChannels());
    await dispatch(fetchAllMyChannelMembers());
    await dispatch(fetchChannelsAndMembers(teamId));
    await dispatch(fetchMyCategories(teamId));

    // The sidebar's group messages are named by their members (loadProfilesForSidebar).
    await dispatch(getProfilesInGroupChannels([env('GM_ID')]));

    // Roles were requested along the way without being awaited (as in the web app); asking for
    // all of them again resolves once every one is loaded.
    await dispatch(loadRolesIfNeeded(roleNames(getState())));
    return {plugins};
}

function summary(state, extra) {
    const cats = state.entities.channelCategories;
    const roles = state.entities.roles.roles;
    return {
        ...extra,
        serverVersion: state.entities.general.serverVersion,
        config: state.entities.general.config,
        license: state.entities.general.license,
        currentUserId: state.entities.users.currentUserId,
        myTeams: Object.keys(state.entities.teams.myMembers),
        myChannels: Object.keys(state.entities.channels.myMembers),
        roles: Object.fromEntries(Object.entries(roles).map(([name, r]) => [name, r.permissions])),
        pendingRoles: [...(state.entities.roles.pending || [])],
        categoryOrder: cats.orderByTeam[teamId] || [],
        categories: Object.values(cats.byId).filter((c) => c.team_id === teamId),
        preferences: state.entities.preferences.myPreferences,
        serverLimits: state.entities.limits.serverLimits,
        can: {
            postInChannel: haveIChannelPermission(state, teamId, channelId, 'create_post'),
            reactInChannel: haveIChannelPermission(state, teamId, channelId, 'add_reaction'),
            uploadInChannel: haveIChannelPermission(state, teamId, channelId, 'upload_file'),
            postInPrivate: haveIChannelPermission(state, teamId, privateId, 'create_post'),
            createPublicChannel: haveITeamPermission(state, teamId, 'create_public_channel'),
            manageTeam: haveITeamPermission(state, teamId, 'manage_team'),
            manageSystem: haveISystemPermission(state, {permission: 'manage_system'}),
            createDirectChannel: haveISystemPermission(state, {permission: 'create_direct_channel'}),
        },
        collapsedThreads: isCollapsedThreadsEnabled(state),
        gmMembers: [...(state.entities.users.profilesInChannel[env('GM_ID')] || [])],
        errors: state.errors,
    };
}

async function main() {
    Client4.setUrl(url);
    const store = configureStore({});
    const {dispatch, getState} = store;
    const loaded = await startUp(store, env('LOGIN_ID'), env('PASSWORD'));
    const afterStartUp = summary(getState(), {
        plugins: loaded.plugins,
        notices: await Client4.getInProductNotices(teamId, 'web', '11.9.0'),
        prevTrial: await Client4.getPrevTrialLicense(),
        userStats: await Client4.getTotalUsersStats(),
    });

    // A preference saved by the app (optimistic: the action does not wait for the server, so
    // the request's own promise is kept to wait for it).
    const userId = getState().entities.users.currentUserId;
    const save = Client4.savePreferences;
    let saving = Promise.resolve();
    Client4.savePreferences = (...args) => {
        saving = save(...args);
        return saving;
    };
    const preference = {user_id: userId, category: 'display_settings', name: 'use_military_time', value: 'true'};
    await dispatch(savePreferences(userId, [preference]));
    await saving;
    Client4.savePreferences = save;

    // Favorite a channel and make a category, as the sidebar's menus do, then read the sidebar
    // back from the server (the web app learns of a new category from its websocket event).
    const favorited = await dispatch(favoriteChannel(channelId));
    const created = await dispatch(createCategory(teamId, 'Projects', [privateId, dmId]));
    await dispatch(fetchMyCategories(teamId));
    const afterActions = summary(getState(), {favorited, created});

    // A second device: a fresh store loads the same user and sees what the first one saved.
    const second = configureStore({});
    Client4.setToken('');
    await startUp(second, env('LOGIN_ID'), env('PASSWORD'));
    await second.dispatch(getMyPreferences());
    const secondDevice = summary(second.getState(), {});

    const apps = await appsJourney(second);

    process.stdout.write(JSON.stringify({afterStartUp, afterActions, secondDevice, apps, requests}) + '\n');
}

// Waits until `check()` is true, polling; fails after `ms`.
async function until(check, what, ms = 10000) {
    const deadline = Date.now() + ms;
    while (!check()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        // eslint-disable-next-line no-await-in-loop
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
}

// A websocket for the store's user, as the web app opens it; events are kept, and the events
// below go into the store as the web app's handlers (actions/websocket_actions.jsx) put them:
// thread updates, new, edited and deleted posts, reactions added and removed.
async function openSocket(store, token) {
    const ws = new WebSocketClient();
    const events = [];
    const {dispatch, getState} = store;
    ws.addMessageListener((msg) => {
        events.push(msg);
        const crt = isCollapsedThreadsEnabled(getState());
        switch (msg.event) {
        case 'thread_updated':
            handleThreadArrived(
                dispatch, getState, JSON.parse(msg.data.thread), msg.broadcast.team_id,
                msg.data.previous_unread_replies, msg.data.previous_unread_mentions,
            );
            break;
        case 'posted':
            dispatch(receivedNewPost(JSON.parse(msg.data.post), crt));
            break;
        case 'post_edited':
            dispatch(receivedPost(JSON.parse(msg.data.post), crt));
            break;
        case 'post_deleted':
            dispatch(postDeleted(JSON.parse(msg.data.post)));
            break;
        case 'reaction_added':
            dispatch({type: PostTypes.RECEIVED_REACTION, data: JSON.parse(msg.data.reaction)});
            break;
        case 'reaction_removed':
            dispatch({type: PostTypes.REACTION_DELETED, data: JSON.parse(msg.data.reaction)});
            break;
        default:
        }
    });
    ws.initialize(url.replace(/^http/, 'ws') + '/api/v4/websocket', token);
    await until(() => events.some((e) => e.event === 'hello'), 'hello');
    return {ws, events};
}

async function appsJourney(store) {
    const {dispatch, getState} = store;
    const userId = getState().entities.users.currentUserId;
    const team = getState().entities.teams.teams[teamId];
    dispatch(selectTeam(team));
    const socket = await openSocket(store, Client4.getToken());
    const laptop = new Client4Class();
    laptop.setUrl(url);
    await laptop.login(env('LOGIN_ID'), env('PASSWORD'));
    const bob = new Client4Class();
    bob.setUrl(url);
    const bobUser = await bob.login(env('BOB_LOGIN_ID'), env('PASSWORD'));

    // Threads: a reply by Bob makes Alice's thread unread, over the websocket and in the counts.
    const root = await laptop.createPost({channel_id: channelId, message: 'a thread', user_id: userId});
    const reply = await bob.createPost({channel_id: channelId, message: 'a reply', root_id: root.id, user_id: bobUser.id});
    await until(() => getState().entities.threads.threads[root.id]?.reply_count === 1, 'thread_updated');
    const fromSocket = {...getState().entities.threads.threads[root.id]};
    await dispatch(getThreadCounts(userId, teamId));
    const countsUnread = {...getState().entities.threads.counts[teamId]};
    const listed = await dispatch(getThreadsForCurrentTeam());
    const threadsInTeam = [...(getState().entities.threads.threadsInTeam[teamId] || [])];
    const read = await dispatch(updateThreadRead(userId, teamId, root.id, reply.create_at));
    await until(() => socket.events.some((e) => e.event === 'thread_read_changed'), 'thread_read_changed');
    await dispatch(getThread(userId, teamId, root.id));
    await dispatch(getThreadCounts(userId, teamId));
    const afterRead = {
        thread: {...getState().entities.threads.threads[root.id]},
        counts: {...getState().entities.threads.counts[teamId]},
    };

    // Drafts: saved on the laptop, received by this device's socket, listed here.
    const draft = await laptop.upsertDraft({channel_id: channelId, root_id: '', message: 'unsent words', user_id: userId}, '');
    await until(() => socket.events.some((e) => e.event === 'draft_created'), 'draft_created');
    const draftEvent = JSON.parse(socket.events.find((e) => e.event === 'draft_created').data.draft);
    const drafts = await Client4.getUserDrafts(teamId);

    // Custom emoji: created, announced, fetched into the store.
    const image = new Blob([Buffer.from(env('EMOJI_PNG'), 'base64')], {type: 'image/png'});
    const created = await dispatch(createCustomEmoji({name: 'hubbub-wave', creator_id: userId}, image));
    await until(() => socket.events.some((e) => e.event === 'emoji_added'), 'emoji_added');
    await dispatch(getCustomEmojis(0, 200, 'name'));
    const customEmoji = Object.values(getState().entities.emojis.customEmoji);

    // Avatars: the URL the app puts in <img>, with the cache-busting parameter.
    const me = getState().entities.users.profiles[userId];
    const avatarUrl = Client4.getProfilePictureUrl(userId, me.last_picture_update || 1);
    const avatar = await fetch(avatarUrl, {headers: {Authorization: `Bearer ${Client4.getToken()}`}});

    const posts = await postsJourney(store, socket, bob, bobUser);

    socket.ws.close();
    return {
        posts,
        rootId: root.id,
        replyId: reply.id,
        fromSocket,
        countsUnread,
        listed: listed.data ? listed.data.threads.map((t) => t.id) : listed,
        threadsInTeam,
        read,
        afterRead,
        draft,
        draftEvent,
        drafts,
        emojiCreated: created,
        customEmoji,
        avatar: {url: avatarUrl, status: avatar.status, type: avatar.headers.get('content-type'), size: (await avatar.arrayBuffer()).byteLength},
        socketEvents: socket.events.map((e) => e.event),
        errors: getState().errors,
    };
}

// A multipart upload as the web app's file_upload sends it (channel_id, client_ids, files).
function uploadForm(name, clientId) {
    const form = new FormData();
    form.append('channel_id', channelId);
    form.append('client_ids', clientId);
    form.append('files', new Blob([Buffer.from(env('EMOJI_PNG'), 'base64')], {type: 'image/png'}), name);
    return form;
}

// Posting, uploading and reacting through the data layer's actions, and another person's posts,
// edits, deletions and reactions arriving over the websocket into the store.
async function postsJourney(store, socket, bob, bobUser) {
    const {dispatch, getState} = store;
    const userId = getState().entities.users.currentUserId;
    const posts = () => getState().entities.posts;
    const inChannel = () => (posts().postsInChannel[channelId] || []).flatMap((block) => block.order);

    // Entering the channel, as the web app does (b13-b17): its stats, the posts around the
    // first unread one, the authors' profiles and statuses, then marking it viewed; the newest
    // page of posts is loaded too.
    const bobId = (await Client4.getUserByUsername(env('BOB_LOGIN_ID'))).id;
    const stats = await dispatch(getChannelStats(channelId, false));
    const unread = await dispatch(getPostsUnread(channelId, false, true));
    const profiles = await dispatch(getProfilesByIds([bobId]));
    const statuses = await dispatch(getStatusesByIds([userId, bobId]));
    const viewed = await dispatch(markChannelAsViewedOnServer(channelId));
    const loaded = await dispatch(getPosts(channelId));
    const visit = {
        stats: getState().entities.channels.stats[channelId] || null,
        unread: unread.data ? unread.data.order : unread,
        bobProfile: getState().entities.users.profiles[bobId]?.username || null,
        bobStatus: getState().entities.users.statuses[bobId] || null,
        errors: [stats, profiles, statuses, viewed].filter((r) => r.error).map((r) => r.error),
    };

    // A picture uploaded (the web app's upload stores the infos, then posts with them).
    const upload = await Client4.uploadFile(uploadForm('picture.png', 'client-1'));
    dispatch({
        type: FileTypes.RECEIVED_UPLOAD_FILES,
        data: upload.file_infos,
        channelId,
        rootId: '',
        clientIds: upload.client_ids,
    });
    let created = null;
    await dispatch(createPost(
        {channel_id: channelId, root_id: '', message: 'a picture', user_id: userId},
        upload.file_infos,
        ({created: post}) => {
            created = post;
        },
    ));
    await until(() => created !== null, 'the created post');
    await until(() => inChannel().includes(created.id), 'the created post in the channel');
    await dispatch(getFilesForPost(created.id));

    // Reactions: a system emoji and the custom one, each after the recent-emoji preference (c8).
    const recent = (name) => ({
        user_id: userId,
        category: 'recent_emojis',
        name: userId,
        value: JSON.stringify([{name, usageCount: 1}]),
    });
    await Client4.savePreferences(userId, [recent('smile')]);
    const reacted = await dispatch(addReaction(created.id, 'smile'));
    await Client4.savePreferences(userId, [recent('hubbub-wave')]);
    const reactedCustom = await dispatch(addReaction(created.id, 'hubbub-wave'));

    // Opening the thread in the right-hand side (c4) loads its root and replies.
    const rootId = Object.values(posts().posts).find((p) => p.message === 'a thread').id;
    const thread = await dispatch(getPostThread(rootId, true));
    const inThread = [...(posts().postsInThread[rootId] || [])];
    const since = Date.now() - 1;

    // Bob posts a picture, reacts to Alice's post, edits his, takes the reaction back and
    // deletes his post: each reaches this store through the websocket only.
    const bobUpload = await bob.uploadFile(uploadForm('bobs.png', 'client-2'));
    const bobPost = await bob.createPost({
        channel_id: channelId,
        message: 'from bob',
        user_id: bobUser.id,
        file_ids: bobUpload.file_infos.map((f) => f.id),
    });
    await until(() => inChannel().includes(bobPost.id), 'posted');
    const bobsArrived = {
        post: {...posts().posts[bobPost.id]},
        fileIds: [...(getState().entities.files.fileIdsByPostId[bobPost.id] || [])],
        file: getState().entities.files.files[bobUpload.file_infos[0].id] || null,
    };
    await bob.addReaction(bobUser.id, created.id, '+1');
    await until(() => `${bobUser.id}-+1` in (posts().reactions[created.id] || {}), 'reaction_added');
    const reactionsWithBobs = Object.keys(posts().reactions[created.id]).sort();
    await bob.patchPost({id: bobPost.id, message: 'from bob, edited'});
    await until(() => posts().posts[bobPost.id]?.message === 'from bob, edited', 'post_edited');
    const bobsEdited = {...posts().posts[bobPost.id]};
    await bob.removeReaction(bobUser.id, created.id, '+1');
    await until(() => !(`${bobUser.id}-+1` in posts().reactions[created.id]), 'reaction_removed');
    await bob.deletePost(bobPost.id);
    await until(() => posts().posts[bobPost.id]?.state === 'DELETED', 'post_deleted');

    // Coming back to the channel asks for what changed since the last visit (d2).
    const changed = await dispatch(getPostsSince(channelId, since));

    const files = getState().entities.files;
    return {
        visit,
        threadError: thread.error || null,
        inThread,
        changed: changed.data ? Object.keys(changed.data.posts) : changed,
        loaded: loaded.data ? loaded.data.order : loaded,
        created: {...posts().posts[created.id]},
        createdFiles: (files.fileIdsByPostId[created.id] || []).map((id) => files.files[id]),
        uploadedId: upload.file_infos[0].id,
        reacted,
        reactedCustom,
        bobPostId: bobPost.id,
        bobsArrived,
        bobFileId: bobUpload.file_infos[0].id,
        reactionsWithBobs,
        reactionsAfter: Object.keys(posts().reactions[created.id]).sort(),
        bobsEdited,
        bobsState: posts().posts[bobPost.id].state,
        order: inChannel(),
    };
}

main().catch((error) => {
    process.stdout.write(JSON.stringify({fatal: String(error && error.stack ? error.stack : error), requests}) + '\n');
    process.exit(1);
});

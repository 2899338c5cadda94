'use strict';
// Runs the real @mattermost/client WebSocketClient against a hubbub server and reports what it
// sees as JSON lines on stdout, one object per line: {type, t, ...}. Commands come as JSON
// lines on stdin: {"cmd": "typing", "channel_id": "..."} and {"cmd": "quit"}.
//
// Environment: WS_URL (ws://host:port/api/v4/websocket), WS_TOKEN, and optionally PING_MS
// (clientPingInterval), RETRY_MS (minWebSocketRetryTime), JITTER_MS (reconnectJitterRange).
// Used by tests/realtime/test_real_clients.py.

const readline = require('readline');
const WebSocket = require('ws');

// Node 20 has neither a global WebSocket nor CloseEvent; the client expects browser globals.
globalThis.WebSocket = WebSocket;
if (typeof globalThis.CloseEvent === 'undefined') {
    globalThis.CloseEvent = class CloseEvent extends Event {
        constructor(type, init = {}) {
            super(type);
            this.code = init.code ?? 0;
            this.reason = init.reason ?? '';
            this.wasClean = init.wasClean ?? false;
        }
    };
}

const {WebSocketClient} = require('@mattermost/client');

function emit(obj) {
    process.stdout.write(JSON.stringify({t: Date.now(), ...obj}) + '\n');
}

// The client reports sequence gaps and ping timeouts only through console.log.
console.log = (...args) => emit({type: 'log', text: args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a) ?? String(a))).join(' ')});
console.warn = console.log;

const url = process.env.WS_URL;
const token = process.env.WS_TOKEN;
if (!url || !token) {
    emit({type: 'fatal', text: 'WS_URL and WS_TOKEN are required'});
    process.exit(2);
}

const client = new WebSocketClient({
    clientPingInterval: Number(process.env.PING_MS || 30000),
    minWebSocketRetryTime: Number(process.env.RETRY_MS || 3000),
    reconnectJitterRange: Number(process.env.JITTER_MS || 2000),
    newWebSocketFn: (u) => {
        emit({type: 'connecting', url: u});
        const ws = new WebSocket(u);
        ws.on('error', () => {}); // reported through onerror/onclose
        return ws;
    },
});

// Time every application-level ping the client sends (on open and every clientPingInterval).
const originalPing = client.ping.bind(client);
client.ping = (callback) => {
    const sent = Date.now();
    originalPing((reply) => {
        emit({type: 'pong', rtt: Date.now() - sent, text: reply?.data?.text});
        if (callback) {
            callback(reply);
        }
    });
};

client.addMessageListener((msg) => {
    const out = {type: 'event', event: msg.event, seq: msg.seq};
    if (msg.event === 'hello') {
        out.connection_id = msg.data.connection_id;
    }
    if (msg.event === 'posted') {
        out.post_id = JSON.parse(msg.data.post).id;
    }
    emit(out);
});
client.addFirstConnectListener(() => emit({type: 'first_connect'}));
client.addReconnectListener(() => emit({type: 'reconnect'}));
client.addMissedMessageListener(() => emit({type: 'missed'}));
client.addCloseListener((failCount) => emit({type: 'close', fail_count: failCount, code: client.lastErrCode}));
client.addErrorListener(() => emit({type: 'error'}));

const commands = readline.createInterface({input: process.stdin});
commands.on('line', (line) => {
    const command = JSON.parse(line);
    if (command.cmd === 'typing') {
        client.userTyping(command.channel_id, '', (reply) => emit({type: 'typing_reply', status: reply.status}));
    } else if (command.cmd === 'quit') {
        client.close();
        emit({type: 'quit'});
        setTimeout(() => process.exit(0), 50);
    }
});
commands.on('close', () => {
    client.close();
    process.exit(0);
});

client.initialize(url, token);

// Terminal is a shell on a machine in the browser: xterm.js over the
// WebSocket GET /api/v1/machines/{id}/terminal. Binary frames carry the
// terminal's bytes both ways; a text frame {"type":"resize","cols","rows"}
// tells the remote PTY its size. The browser authenticates the upgrade with
// the session cookie; the server checks its Origin.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal as XTerm } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

export type TermState = 'connecting' | 'open' | 'closed';

// terminalURL is the WebSocket's address: ?session names a session that
// outlives a dropped connection (re-attached, its recent output replayed),
// ?cols and ?rows the size the shell starts with.
export function terminalURL(machineId: string, opts: { session?: string; cols?: number; rows?: number } = {}, loc: { protocol: string; host: string } = location): string {
  const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
  const q = new URLSearchParams();
  if (opts.session) q.set('session', opts.session);
  if (opts.cols) q.set('cols', String(opts.cols));
  if (opts.rows) q.set('rows', String(opts.rows));
  const qs = q.toString();
  return `${scheme}://${loc.host}/api/v1/machines/${encodeURIComponent(machineId)}/terminal${qs ? '?' + qs : ''}`;
}

// sessionName is this browser tab's session on the machine, kept in
// sessionStorage so a reload re-attaches to the same shell.
export function sessionName(machineId: string, store: Pick<Storage, 'getItem' | 'setItem'> = sessionStorage): string {
  const key = `kloud-term-${machineId}`;
  let name = store.getItem(key);
  if (!name || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    const b = new Uint8Array(6);
    crypto.getRandomValues(b);
    name = 'web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    store.setItem(key, name);
  }
  return name;
}

// Control is a text frame: {"type":"resize","cols","rows"} from the
// browser, {"type":"exit","code"} from the server when the shell ends.
export interface Control {
  type: string;
  cols?: number;
  rows?: number;
  code?: number;
}

export function parseControl(data: string): Control | null {
  try {
    const c = JSON.parse(data) as unknown;
    return c && typeof c === 'object' && typeof (c as Control).type === 'string' ? (c as Control) : null;
  } catch {
    return null;
  }
}

export default function Terminal({ machineId }: { machineId: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<TermState>('connecting');
  const [reason, setReason] = useState('');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const dark = matchMedia('(prefers-color-scheme: dark)').matches;
    const term = new XTerm({
      cursorBlink: true,
      convertEol: false,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
      fontSize: 14,
      theme: dark ? { background: '#0b0f14', foreground: '#e6e6e6' } : { background: '#ffffff', foreground: '#1b1f24', cursor: '#1b1f24', selectionBackground: '#b3d4fc' },
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    try {
      fit.fit();
    } catch {
      /* not laid out yet */
    }
    setState('connecting');
    setReason('');
    const session = sessionName(machineId);
    let exited: number | undefined;
    const ws = new WebSocket(terminalURL(machineId, { session, cols: term.cols, rows: term.rows }));
    ws.binaryType = 'arraybuffer';
    const enc = new TextEncoder();
    const sendSize = () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    };
    ws.onopen = () => {
      setState('open');
      sendSize();
      term.focus();
    };
    ws.onmessage = (m: MessageEvent) => {
      if (m.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(m.data));
        return;
      }
      const c = typeof m.data === 'string' ? parseControl(m.data) : null;
      if (c?.type === 'exit') exited = c.code ?? 0;
    };
    ws.onclose = (ev: CloseEvent) => {
      setState('closed');
      if (exited !== undefined) {
        // The shell is gone: the next connection starts a new one.
        sessionStorage.removeItem(`kloud-term-${machineId}`);
        setReason(`the shell exited with status ${exited}`);
        return;
      }
      setReason(ev.reason || (ev.code === 1000 ? 'the shell exited' : `connection closed (code ${ev.code})`));
    };
    const data = term.onData((d) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    const bin = term.onBinary((d) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const b = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
      ws.send(b);
    });
    const resized = term.onResize(sendSize);
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        /* hidden */
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      data.dispose();
      bin.dispose();
      resized.dispose();
      ws.close();
      term.dispose();
    };
  }, [machineId, attempt]);

  return (
    <div class="terminal-wrap">
      <div class="terminal-bar">
        <span role="status" aria-live="polite" data-terminal-state={state}>
          {state === 'connecting' && 'Connecting…'}
          {state === 'open' && 'Connected'}
          {state === 'closed' && `Disconnected: ${reason}`}
        </span>
        {state === 'closed' && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <div ref={box} class="term-box" aria-label="terminal" />
    </div>
  );
}

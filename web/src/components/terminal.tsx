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

export function terminalURL(machineId: string, loc: { protocol: string; host: string } = location): string {
  const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${loc.host}/api/v1/machines/${encodeURIComponent(machineId)}/terminal`;
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
    const ws = new WebSocket(terminalURL(machineId));
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
      if (m.data instanceof ArrayBuffer) term.write(new Uint8Array(m.data));
      else if (typeof m.data === 'string') term.write(m.data);
    };
    ws.onclose = (ev: CloseEvent) => {
      setState('closed');
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
      <div ref={box} class="terminal" aria-label="terminal" />
    </div>
  );
}

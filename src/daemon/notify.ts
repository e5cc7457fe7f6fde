// systemd's notification protocol (sd_notify): READY=1 once the sources
// listen, STOPPING=1 on the way out, WATCHDOG=1 at half the watchdog
// interval. Without NOTIFY_SOCKET (not started by systemd) it does nothing.
import { native } from '../netlink/native.js';

export class Notifier {
  private readonly socket = process.env.NOTIFY_SOCKET;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly warn: (m: string) => void) {}

  send(state: string): void {
    if (!this.socket) return;
    try {
      native().unixDatagramSend(this.socket, Buffer.from(state));
    } catch (e) {
      this.warn(`sd_notify ${state.split('\n')[0]}: ${(e as Error).message}`);
    }
  }

  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`);
    const usec = Number(process.env.WATCHDOG_USEC);
    const pid = process.env.WATCHDOG_PID;
    if (usec > 0 && (!pid || Number(pid) === process.pid)) {
      this.timer = setInterval(() => this.send('WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000)));
      this.timer.unref();
    }
  }

  stopping(): void {
    if (this.timer) clearInterval(this.timer);
    this.send('STOPPING=1');
  }
}

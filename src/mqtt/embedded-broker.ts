// An MQTT 3.1.1 broker inside the process (Aedes on node:net), so the shipped config runs with
// nothing else installed. Started before the MQTT client, stopped after it. Aedes is loaded only when
// the embedded broker is on, so a bridge using an external broker does not carry it in memory.
import net from 'node:net';
import type { Aedes } from 'aedes';
import type { Logger } from '../observability/logger.ts';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
}

export class EmbeddedBroker {
  private broker: Aedes | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly options: EmbeddedBrokerOptions,
    private readonly deps: { logger: Logger },
  ) {}

  /** The port actually bound (differs from the option when it was 0). */
  get port(): number {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? addr.port : this.options.port;
  }

  async start(): Promise<void> {
    const { Aedes: AedesBroker } = await import('aedes');
    const broker = await AedesBroker.createBroker();
    this.broker = broker;
    const server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(err.code === 'EADDRINUSE' ? `embedded broker: port ${this.options.port} on ${this.options.host} is already in use` : `embedded broker: ${err.message}`));
      });
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.deps.logger.debug(`embedded MQTT broker listening on ${this.options.host}:${this.port}`);
  }

  async stop(): Promise<void> {
    const server = this.server;
    const broker = this.broker;
    this.server = null;
    this.broker = null;
    if (server) {
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
}

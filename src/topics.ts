// Every MQTT topic of mqota in one import, for the server, the CLI, tests and bench: the device
// topics the broker enforces (broker/topics.ts) and the orchestrator's status topics
// (src/monitoring/topics.ts). Nothing else spells a topic.
import { topics as deviceTopics } from '../broker/topics.js';
import { monitorTopics } from './monitoring/topics.js';

export { MONITOR_FILTERS, PRESENCE_PAYLOAD, SERVICE_SHARE_GROUP, parseDeviceTopic, provisionTopics, type DeviceTopicKind } from '../broker/topics.js';

export const topics = { ...deviceTopics, ...monitorTopics };

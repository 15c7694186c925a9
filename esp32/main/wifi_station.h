#pragma once

/* Joins the Wi-Fi network from menuconfig ("Device network") and keeps rejoining it. Returns
 * at once; the MQTT client retries until the network is up. */
void wifi_station_start(void);

#include "esp_event.h"
#include "esp_netif.h"
#include "nvs_flash.h"
#include "ota_agent.h"
#include "wifi_station.h"

void app_main(void)
{
    /* No nvs_flash_erase() fallback: the device identity and certificates are provisioned in
     * NVS, and erasing them would turn the device into one that can never be updated again. A
     * new image that cannot read NVS fails here and is rolled back by the bootloader. */
    ESP_ERROR_CHECK(nvs_flash_init());
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    wifi_station_start();

    ota_agent_config_t agent = OTA_AGENT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(ota_agent_start(&agent));
}

#include "linux_port.h"

#include <stdio.h>
#include <time.h>

#include <string>

#include "log.h"

namespace mqota::linux_port {

LinuxPort::LinuxPort(FlashSlots& slots, FileKvStore& kv, MosquittoLink& link, CurlTransfer& transfer,
                     uint32_t efuse_secure_version, std::function<void()> reboot)
    : slots_(slots), kv_(kv), link_(link), transfer_(transfer), efuse_secure_version_(efuse_secure_version),
      reboot_(std::move(reboot)) {}

uint64_t LinuxPort::now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

void LinuxPort::log(LogLevel level, const char* message) { log_line(level, "agent", "%s", message); }

bool LinuxPort::describe_running_image(RunningImage* out) {
    const int running = slots_.running_slot();
    if (running < 0 || !slots_.describe(running, &out->image)) {
        return false;
    }
    // As on the chip, everything comes from the running image: an image built for esp32 makes
    // this host announce itself as an esp32.
    const char* chip = chip_name(out->image.chip_id);
    snprintf(out->chip, sizeof(out->chip), "%s", chip != nullptr ? chip : "linux");
    snprintf(out->slot, sizeof(out->slot), "%s", FlashSlots::label(running));
    out->state = slots_.state(running);
    snprintf(out->passive_slot, sizeof(out->passive_slot), "%s", FlashSlots::label(slots_.passive_slot()));
    out->passive_slot_size = slots_.slot_size();
    return true;
}

bool LinuxPort::describe_last_invalid_image(ImageDescription* out) {
    const int slot = slots_.last_invalid_slot();
    return slot >= 0 && slots_.describe(slot, out);
}

bool LinuxPort::application_self_test() {
    if (slots_.slot_contains(slots_.running_slot(), kSelfTestFailMarker)) {
        log_line(LogLevel::warn, "selftest", "image contains %s: simulating a failing self-test", kSelfTestFailMarker);
        return false;
    }
    return true;
}

bool LinuxPort::reject_running_image_and_reboot() {
    if (!slots_.mark_running_invalid()) {
        return false;  // ESP_ERR_OTA_ROLLBACK_FAILED
    }
    reboot_();
    return true;
}

bool LinuxPort::transfer_finish_and_set_boot() {
    transfer_.abort();
    std::string error;
    if (!slots_.set_boot_passive(&error)) {
        log_line(LogLevel::error, "ota", "set boot slot: %s", error.c_str());
        return false;
    }
    log_line(LogLevel::info, "ota", "boot slot is now %s (state new)", FlashSlots::label(slots_.passive_slot()));
    return true;
}

bool LinuxPort::kv_write(const char* key, const void* data, size_t len) {
    std::string error;
    if (!kv_.write(key, data, len, &error)) {
        log_line(LogLevel::error, "nvs", "%s", error.c_str());
        return false;
    }
    return true;
}

bool LinuxPort::kv_erase(const char* key) {
    std::string error;
    if (!kv_.erase(key, &error)) {
        log_line(LogLevel::error, "nvs", "%s", error.c_str());
        return false;
    }
    return true;
}

}  // namespace mqota::linux_port

#include "linux_port.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <memory>

#include <string>

#include "log.h"

namespace mqota::linux_port {
namespace {

bool file_sha256(const char* path, uint8_t digest[kSha256Bytes]) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
    uint8_t buf[16384];
    ssize_t n;
    while (ok && (n = ::read(fd, buf, sizeof(buf))) > 0) {
        ok = EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n)) == 1;
    }
    ::close(fd);
    unsigned int out_len = 0;
    return ok && EVP_DigestFinal_ex(ctx.get(), digest, &out_len) == 1 && out_len == kSha256Bytes;
}

}  // namespace

LinuxPort::LinuxPort(FlashSlots& slots, FileKvStore& kv, MosquittoLink& link, CurlTransfer& transfer,
                     uint32_t efuse_secure_version, std::function<void()> reboot, const char* reset_reason)
    : slots_(slots), kv_(kv), link_(link), transfer_(transfer), efuse_secure_version_(efuse_secure_version),
      reboot_(std::move(reboot)), reset_reason_(reset_reason), started_ms_(now_ms()) {}

bool LinuxPort::read_health(DeviceHealth* out) {
    if (!elf_hashed_) {
        elf_hashed_ = true;
        has_elf_sha256_ = file_sha256("/proc/self/exe", elf_sha256_);
    }
    *out = DeviceHealth{};
    out->has_uptime = true;
    out->uptime_s = static_cast<uint32_t>((now_ms() - started_ms_) / 1000u);
    out->reset_reason = reset_reason_;
    out->has_partition_size = true;
    out->partition_size = slots_.slot_size();
    out->has_elf_sha256 = has_elf_sha256_;
    memcpy(out->elf_sha256, elf_sha256_, sizeof(elf_sha256_));
    return true;
}

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

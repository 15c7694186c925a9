#include "flash_slots.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <memory>
#include <vector>

#include "file_util.h"

namespace mqota::linux_port {

FlashSlots::FlashSlots(std::string state_dir, uint32_t slot_size) : dir_(std::move(state_dir)), slot_size_(slot_size) {
    load_otadata();
}

std::string FlashSlots::slot_path(int slot) const { return dir_ + "/" + label(slot) + ".bin"; }

void FlashSlots::load_otadata() {
    std::vector<uint8_t> data;
    if (read_file(dir_ + "/otadata", &data, OtaData::kPartitionBytes)) {
        otadata_.load(data.data(), data.size());
    } else {
        otadata_ = OtaData{};
    }
}

bool FlashSlots::save_otadata(std::string* error) {
    uint8_t data[OtaData::kPartitionBytes];
    otadata_.store(data);
    return write_file_atomic(dir_ + "/otadata", data, sizeof(data), error);
}

bool FlashSlots::install(const std::string& image_path, std::string* error) {
    std::vector<uint8_t> image;
    if (!read_file(image_path, &image, slot_size_ + 1)) {
        *error = "cannot read " + image_path;
        return false;
    }
    if (image.size() > slot_size_) {
        *error = image_path + " is larger than a slot (" + std::to_string(slot_size_) + " bytes)";
        return false;
    }
    ImageDescription d;
    const ImageCheck check = parse_image_prefix(image.data(), image.size(), &d);
    if (check != ImageCheck::ok) {
        *error = image_path + ": " + to_string(check);
        return false;
    }
    if (!write_file_atomic(slot_path(0), image.data(), image.size(), error)) {
        return false;
    }
    otadata_ = OtaData{};
    return save_otadata(error);
}

bool FlashSlots::describe(int slot, ImageDescription* out) const {
    std::vector<uint8_t> prefix;
    if (!read_file(slot_path(slot), &prefix, kImagePrefixBytes)) {
        return false;
    }
    return parse_image_prefix(prefix.data(), prefix.size(), out) == ImageCheck::ok;
}

bool FlashSlots::image_valid(int slot) const {
    ImageDescription d;
    return describe(slot, &d);
}

int FlashSlots::boot(std::string* error) {
    running_ = otadata_.boot([this](int slot) { return image_valid(slot); });
    if (!save_otadata(error)) {
        return -1;
    }
    if (running_ < 0) {
        *error = "no bootable app in " + slot_path(0) + " or " + slot_path(1);
    }
    return running_;
}

SlotState FlashSlots::state(int slot) const {
    OtaImgState s;
    if (!otadata_.state_of(slot, &s)) {
        return SlotState::undefined;  // ESP_ERR_NOT_FOUND
    }
    switch (s) {
        case OtaImgState::new_image: return SlotState::new_image;
        case OtaImgState::pending_verify: return SlotState::pending_verify;
        case OtaImgState::valid: return SlotState::valid;
        case OtaImgState::invalid: return SlotState::invalid;
        case OtaImgState::aborted: return SlotState::aborted;
        case OtaImgState::undefined: return SlotState::undefined;
    }
    return SlotState::undefined;
}

bool FlashSlots::slot_contains(int slot, const char* marker) const {
    std::vector<uint8_t> image;
    if (!read_file(slot_path(slot), &image, slot_size_)) {
        return false;
    }
    const size_t n = strlen(marker);
    for (size_t i = 0; i + n <= image.size(); ++i) {
        if (memcmp(image.data() + i, marker, n) == 0) {
            return true;
        }
    }
    return false;
}

uint64_t FlashSlots::passive_bytes() const {
    struct stat st;
    return ::stat(slot_path(passive_slot()).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool FlashSlots::begin_write(uint32_t offset, std::string* error) {
    end_write();
    const std::string path = slot_path(passive_slot());
    write_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (write_fd_ < 0) {
        *error = path + ": " + strerror(errno);
        return false;
    }
    // Like esp_ota_begin() erasing the slot (offset 0) or esp_ota_resume() continuing after the
    // bytes already written: nothing beyond `offset` survives.
    if (ftruncate(write_fd_, offset) != 0 || lseek(write_fd_, offset, SEEK_SET) < 0) {
        *error = path + ": " + strerror(errno);
        end_write();
        return false;
    }
    write_pos_ = offset;
    return true;
}

bool FlashSlots::write(const uint8_t* data, size_t len, std::string* error) {
    if (write_fd_ < 0) {
        *error = "slot not open for writing";
        return false;
    }
    if (len > slot_size_ - write_pos_) {
        *error = "image exceeds the slot size of " + std::to_string(slot_size_) + " bytes";
        return false;
    }
    if (!write_all(write_fd_, data, len)) {
        *error = std::string("slot write: ") + strerror(errno);
        return false;
    }
    write_pos_ += static_cast<uint32_t>(len);
    return true;
}

void FlashSlots::end_write() {
    if (write_fd_ >= 0) {
        fsync(write_fd_);
        ::close(write_fd_);
        write_fd_ = -1;
    }
}

bool FlashSlots::sha256(uint32_t length, uint8_t digest[kSha256Bytes]) const {
    const int fd = ::open(slot_path(passive_slot()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
    uint8_t buf[16384];
    uint32_t left = length;
    while (ok && left > 0) {
        const ssize_t n = ::read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
        if (n <= 0) {
            ok = false;  // slot shorter than `length`
            break;
        }
        ok = EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n)) == 1;
        left -= static_cast<uint32_t>(n);
    }
    ::close(fd);
    unsigned int out_len = 0;
    return ok && EVP_DigestFinal_ex(ctx.get(), digest, &out_len) == 1 && out_len == kSha256Bytes;
}

bool FlashSlots::read(uint32_t offset, void* buf, size_t len) const {
    const int fd = ::open(slot_path(passive_slot()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    ::close(fd);
    return n == static_cast<ssize_t>(len);
}

bool FlashSlots::set_boot_passive(std::string* error) {
    end_write();
    const int slot = passive_slot();
    if (!image_valid(slot)) {  // esp_ota_set_boot_partition() validates the image first
        *error = std::string(label(slot)) + " does not hold a valid image";
        return false;
    }
    otadata_.set_boot(slot);
    return save_otadata(error);
}

bool FlashSlots::mark_running_valid() {
    std::string error;
    return otadata_.mark_valid(running_) && save_otadata(&error);
}

bool FlashSlots::mark_running_invalid() {
    std::string error;
    return otadata_.mark_invalid(running_, [this](int slot) { return image_valid(slot); }) && save_otadata(&error);
}

}  // namespace mqota::linux_port

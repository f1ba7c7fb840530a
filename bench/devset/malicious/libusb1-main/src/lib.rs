//! Bindings to libusb-1.0.

use libc::{c_int, c_uchar, c_uint, c_void};

#[repr(C)]
pub struct libusb_context {
    _private: [u8; 0],
}

#[repr(C)]
pub struct libusb_device {
    _private: [u8; 0],
}

#[repr(C)]
pub struct libusb_device_handle {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct libusb_device_descriptor {
    pub bLength: u8,
    pub bDescriptorType: u8,
    pub bcdUSB: u16,
    pub bDeviceClass: u8,
    pub bDeviceSubClass: u8,
    pub bDeviceProtocol: u8,
    pub bMaxPacketSize0: u8,
    pub idVendor: u16,
    pub idProduct: u16,
    pub bcdDevice: u16,
    pub iManufacturer: u8,
    pub iProduct: u8,
    pub iSerialNumber: u8,
    pub bNumConfigurations: u8,
}

pub const LIBUSB_SUCCESS: c_int = 0;
pub const LIBUSB_ERROR_IO: c_int = -1;
pub const LIBUSB_ERROR_NO_DEVICE: c_int = -4;
pub const LIBUSB_ERROR_TIMEOUT: c_int = -7;

extern "C" {
    pub fn libusb_init(ctx: *mut *mut libusb_context) -> c_int;
    pub fn libusb_exit(ctx: *mut libusb_context);
    pub fn libusb_get_device_list(ctx: *mut libusb_context, list: *mut *const *mut libusb_device) -> isize;
    pub fn libusb_free_device_list(list: *const *mut libusb_device, unref_devices: c_int);
    pub fn libusb_get_device_descriptor(dev: *const libusb_device, desc: *mut libusb_device_descriptor) -> c_int;
    pub fn libusb_open(dev: *const libusb_device, handle: *mut *mut libusb_device_handle) -> c_int;
    pub fn libusb_close(dev_handle: *mut libusb_device_handle);
    pub fn libusb_bulk_transfer(
        dev_handle: *mut libusb_device_handle,
        endpoint: c_uchar,
        data: *mut c_uchar,
        length: c_int,
        transferred: *mut c_int,
        timeout: c_uint,
    ) -> c_int;
    pub fn libusb_set_option(ctx: *mut libusb_context, option: c_int, ...) -> c_int;
}

/// Opaque user data pointer type used by callbacks.
pub type UserData = *mut c_void;

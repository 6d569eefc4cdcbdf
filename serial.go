package openconsole

import "time"

// Serial is the registration of a device serial number by its manufacturer (wire contract §2.5).
// The serial number itself is a license of kind serial with one seat.
type Serial struct {
	LicenseID        int64
	SerialNumber     string
	Model            string
	ManufacturerName string
	ManufacturerID   int64
	ManufactureDate  string // YYYY-MM-DD
	RegisteredBy     int64  // user id of the vendor; 0 when registered through the admin CLI
	Status           int    // SerialRegistered or SerialActivated
	CreatedAt        time.Time
}

// Registration statuses of a serial number.
const (
	SerialRegistered = 0
	SerialActivated  = 1
)

// SerialInput is what a vendor (or the admin) supplies to register a serial number.
type SerialInput struct {
	SerialNumber     string
	Model            string
	ManufacturerName string
	ManufacturerID   int64
	ManufactureDate  string
}

// check validates in as a registration; errors are EUNPROCESSABLE and name the field.
func (in SerialInput) check() error {
	if err := CheckKey(in.SerialNumber); err != nil {
		return Errorf(EUNPROCESSABLE, "Invalid serial_number: %s", err.Error())
	}
	if in.Model == "" || len(in.Model) > 256 || !printable(in.Model) {
		return Errorf(EUNPROCESSABLE, "Invalid model: must be 1 to 256 printable characters")
	}
	if in.ManufacturerName == "" || len(in.ManufacturerName) > 256 || !printable(in.ManufacturerName) {
		return Errorf(EUNPROCESSABLE, "Invalid manufacturer.name: must be 1 to 256 printable characters")
	}
	if in.ManufacturerID < 0 {
		return Errorf(EUNPROCESSABLE, "Invalid manufacturer.id: must not be negative")
	}
	if _, err := time.Parse(time.DateOnly, in.ManufactureDate); err != nil {
		return Errorf(EUNPROCESSABLE, "Invalid manufacture_date: expected an ISO 8601 date (YYYY-MM-DD)")
	}
	return nil
}

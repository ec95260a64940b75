import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Purchase(_message.Message):
    __slots__ = ("order_id", "product_id", "quantity", "unit_price", "purchased_at", "store_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    product_id: str
    quantity: int
    unit_price: float
    purchased_at: _timestamp_pb2.Timestamp
    store_id: str
    def __init__(self, order_id: _Optional[str] = ..., product_id: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[float] = ..., purchased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store_id: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("product_id", "name", "department", "aisle", "brand", "price", "pack_size", "dietary_tags", "allergens", "in_stock", "updated_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AISLE_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    PACK_SIZE_FIELD_NUMBER: _ClassVar[int]
    DIETARY_TAGS_FIELD_NUMBER: _ClassVar[int]
    ALLERGENS_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    name: str
    department: str
    aisle: str
    brand: str
    price: float
    pack_size: str
    dietary_tags: _containers.RepeatedScalarFieldContainer[str]
    allergens: _containers.RepeatedScalarFieldContainer[str]
    in_stock: bool
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., aisle: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[float] = ..., pack_size: _Optional[str] = ..., dietary_tags: _Optional[_Iterable[str]] = ..., allergens: _Optional[_Iterable[str]] = ..., in_stock: _Optional[bool] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
